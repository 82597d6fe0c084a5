package template

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Deployment is what the intrinsic functions of a template resolve
// against: the pseudo parameters of one stack and its parameter values
// (parameters not given take their Default).
type Deployment struct {
	Partition, Region, AccountID, StackName string
	Params                                  map[string]string
}

// Grant is one action that an Allow statement of a function's inline
// policies grants, with the resources it names as ARN patterns (* and ?
// are wildcards, as in IAM).
type Grant struct {
	Action    string
	Resources []string
}

// Grants returns the actions that function id's inline policies allow,
// each with its resources resolved for dep: parameters substituted, and
// resources of the template named by the ARN CloudFormation would give
// them (Table's is table/Table: a table's name is its logical id here).
// It returns an error when id is no function or a value cannot be
// resolved.
func (d *Document) Grants(id string, dep Deployment) ([]Grant, error) {
	fn, ok := d.Resources[id]
	if !ok || fn.Type != typeFunction {
		return nil, fmt.Errorf("template: no function %s", id)
	}
	var out []Grant
	for _, p := range List(fn.Properties["Policies"]) {
		for _, s := range List(Path(p, "Statement")) {
			if Path(s, "Effect") != "Allow" {
				continue
			}
			var resources []string
			for _, r := range List(Path(s, "Resource")) {
				vals, err := d.resolve(r, dep)
				if err != nil {
					return nil, fmt.Errorf("template: %s: resource %v: %w", id, r, err)
				}
				resources = append(resources, vals...)
			}
			for _, a := range List(Path(s, "Action")) {
				if name, ok := a.(string); ok {
					out = append(out, Grant{Action: name, Resources: resources})
				}
			}
		}
	}
	return out, nil
}

// Allowed reports whether grants allow action on the resource arn.
func Allowed(grants []Grant, action, arn string) bool {
	for _, g := range grants {
		if !strings.EqualFold(g.Action, action) {
			continue
		}
		for _, r := range g.Resources {
			if ok, _ := path.Match(strings.ReplaceAll(r, "/", "\x00"), strings.ReplaceAll(arn, "/", "\x00")); ok {
				return true
			}
		}
	}
	return false
}

// ResolveString resolves v (a string, or an intrinsic function that
// gives one) for dep; FunctionName: !Sub "${AWS::StackName}-x" gives the
// function's name, for example.
func (d *Document) ResolveString(v any, dep Deployment) (string, error) {
	vals, err := d.resolve(v, dep)
	if err != nil {
		return "", err
	}
	if len(vals) != 1 {
		return "", fmt.Errorf("%v resolves to %d values", v, len(vals))
	}
	return vals[0], nil
}

// resolve returns the values v may take: one for plain values, both
// branches of an Fn::If, none for AWS::NoValue.
func (d *Document) resolve(v any, dep Deployment) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case int, float64, bool:
		return []string{fmt.Sprint(v)}, nil
	case []any:
		var out []string
		for _, e := range v {
			vals, err := d.resolve(e, dep)
			if err != nil {
				return nil, err
			}
			out = append(out, vals...)
		}
		return out, nil
	case map[string]any:
		if len(v) != 1 {
			return nil, fmt.Errorf("not an intrinsic function: %v", v)
		}
		for k, arg := range v {
			return d.intrinsic(k, arg, dep)
		}
	}
	return nil, fmt.Errorf("cannot resolve %v", v)
}

func (d *Document) intrinsic(name string, arg any, dep Deployment) ([]string, error) {
	switch name {
	case "Ref":
		ref, _ := arg.(string)
		if ref == "AWS::NoValue" {
			return nil, nil
		}
		s, err := d.ref(ref, dep)
		return []string{s}, err
	case "Fn::GetAtt":
		parts := List(arg)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt %v", arg)
		}
		s, err := d.getAtt(fmt.Sprint(parts[0]), fmt.Sprint(parts[1]), dep)
		return []string{s}, err
	case "Fn::Sub":
		return d.sub(arg, dep)
	case "Fn::If":
		parts := List(arg)
		if len(parts) != 3 {
			return nil, fmt.Errorf("Fn::If %v", arg)
		}
		return d.resolve(parts[1:], dep)
	case "Fn::Split":
		parts := List(arg)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Split %v", arg)
		}
		s, err := d.ResolveString(parts[1], dep)
		if err != nil {
			return nil, err
		}
		return strings.Split(s, fmt.Sprint(parts[0])), nil
	case "Fn::Select":
		parts := List(arg)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Select %v", arg)
		}
		list, err := d.resolve(parts[1], dep)
		if err != nil {
			return nil, err
		}
		var i int
		if _, err := fmt.Sscan(fmt.Sprint(parts[0]), &i); err != nil || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("Fn::Select %v of %v", parts[0], list)
		}
		return []string{list[i]}, nil
	}
	return nil, fmt.Errorf("intrinsic function %s is not known to this package", name)
}

// sub substitutes ${Name} and ${Resource.Attribute} in an Fn::Sub string,
// with its own variable map if it has one.
func (d *Document) sub(arg any, dep Deployment) ([]string, error) {
	var text string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		text = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub %v", arg)
		}
		text, _ = a[0].(string)
		vars, _ = a[1].(map[string]any)
	}
	var err error
	out := subVar.ReplaceAllStringFunc(text, func(m string) string {
		name := m[2 : len(m)-1]
		var s string
		var e error
		switch v, ok := vars[name]; {
		case ok:
			s, e = d.ResolveString(v, dep)
		case strings.Contains(name, ".") && !strings.HasPrefix(name, "AWS::"):
			id, attr, _ := strings.Cut(name, ".")
			s, e = d.getAtt(id, attr, dep)
		default:
			s, e = d.ref(name, dep)
		}
		if e != nil && err == nil {
			err = e
		}
		return s
	})
	return []string{out}, err
}

// ref is what Ref name gives: a pseudo parameter, a parameter's value, or
// a resource's name (its BucketName, QueueName, FunctionName or TableName
// when set, else its logical id).
func (d *Document) ref(name string, dep Deployment) (string, error) {
	switch name {
	case "AWS::Partition":
		return dep.Partition, nil
	case "AWS::Region":
		return dep.Region, nil
	case "AWS::AccountId":
		return dep.AccountID, nil
	case "AWS::StackName":
		return dep.StackName, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	}
	if v, ok := dep.Params[name]; ok {
		return v, nil
	}
	if p, ok := d.Parameters[name]; ok {
		if def, ok := Path(p, "Default").(string); ok {
			return def, nil
		}
		if def := Path(p, "Default"); def != nil {
			return fmt.Sprint(def), nil
		}
		return "", fmt.Errorf("parameter %s has no value and no default", name)
	}
	r, ok := d.Resources[name]
	if !ok {
		return "", fmt.Errorf("ref %s names nothing", name)
	}
	for _, prop := range []string{"BucketName", "QueueName", "FunctionName", "TableName", "TopicName"} {
		if v, ok := r.Properties[prop]; ok {
			return d.ResolveString(v, dep)
		}
	}
	return name, nil
}

// getAtt gives the ARN-like attributes of the template's resources.
func (d *Document) getAtt(id, attr string, dep Deployment) (string, error) {
	r, ok := d.Resources[id]
	if !ok {
		return "", fmt.Errorf("Fn::GetAtt %s.%s: no such resource", id, attr)
	}
	name, err := d.ref(id, dep)
	if err != nil {
		return "", err
	}
	arn := func(service, resource string) string {
		return fmt.Sprintf("arn:%s:%s:%s:%s:%s", dep.Partition, service, dep.Region, dep.AccountID, resource)
	}
	switch {
	case r.Type == typeTable && attr == "Arn":
		return arn("dynamodb", "table/"+name), nil
	case r.Type == typeTable && attr == "StreamArn":
		return arn("dynamodb", "table/"+name+"/stream/*"), nil
	case r.Type == "AWS::SQS::Queue" && attr == "Arn":
		return arn("sqs", name), nil
	case r.Type == "AWS::SQS::Queue" && attr == "QueueName":
		return name, nil
	case r.Type == typeFunction && attr == "Arn":
		return arn("lambda", "function:"+name), nil
	case r.Type == "AWS::S3::Bucket" && attr == "Arn":
		return fmt.Sprintf("arn:%s:s3:::%s", dep.Partition, name), nil
	}
	return "", fmt.Errorf("Fn::GetAtt %s.%s (%s) is not known to this package", id, attr, r.Type)
}

// FunctionIDs returns the logical ids of the template's functions, sorted.
func (d *Document) FunctionIDs() []string {
	var ids []string
	for id, r := range d.Resources {
		if r.Type == typeFunction {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}
