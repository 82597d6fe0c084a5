package template

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Document is the whole template as plain values (maps, lists, strings,
// numbers), with intrinsic functions in their long form, for the checks
// that look at any part of it: IAM policies, event sources, destinations,
// alarms and the references between resources.
type Document struct {
	Parameters map[string]any
	Conditions map[string]any
	Globals    map[string]any
	Resources  map[string]Resource
	Outputs    map[string]any
}

// Resource is one resource of a Document.
type Resource struct {
	LogicalID  string
	Type       string
	Condition  string
	Properties map[string]any
	Metadata   map[string]any
	// DeletionPolicy and UpdateReplacePolicy are the resource's policies
	// ("" when not set: CloudFormation deletes it).
	DeletionPolicy      string
	UpdateReplacePolicy string
}

// ParseDocument reads a SAM template into a Document. It returns an error
// when the YAML is invalid or a resource has no Type.
func ParseDocument(b []byte) (*Document, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	expandIntrinsics(&root)
	var raw struct {
		Parameters map[string]any `yaml:"Parameters"`
		Conditions map[string]any `yaml:"Conditions"`
		Globals    map[string]any `yaml:"Globals"`
		Resources  map[string]struct {
			Type       string         `yaml:"Type"`
			Condition  string         `yaml:"Condition"`
			Properties map[string]any `yaml:"Properties"`
			Metadata   map[string]any `yaml:"Metadata"`

			DeletionPolicy      string `yaml:"DeletionPolicy"`
			UpdateReplacePolicy string `yaml:"UpdateReplacePolicy"`
		} `yaml:"Resources"`
		Outputs map[string]any `yaml:"Outputs"`
	}
	if err := root.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(raw.Resources) == 0 {
		return nil, errors.New("parse template: no Resources")
	}
	d := &Document{Parameters: raw.Parameters, Conditions: raw.Conditions, Globals: raw.Globals, Outputs: raw.Outputs, Resources: map[string]Resource{}}
	for id, r := range raw.Resources {
		if r.Type == "" {
			return nil, fmt.Errorf("parse template: resource %s has no Type", id)
		}
		d.Resources[id] = Resource{LogicalID: id, Type: r.Type, Condition: r.Condition, Properties: r.Properties, Metadata: r.Metadata,
			DeletionPolicy: r.DeletionPolicy, UpdateReplacePolicy: r.UpdateReplacePolicy}
	}
	return d, nil
}

// OfType returns the resources of type typ sorted by logical id.
func (d *Document) OfType(typ string) []Resource {
	var out []Resource
	for _, r := range d.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LogicalID < out[j].LogicalID })
	return out
}

// Reference is one use of Ref, Fn::GetAtt or a ${Name} of Fn::Sub.
type Reference struct {
	// Kind is "Ref", "Fn::GetAtt" or "Fn::Sub".
	Kind string
	// Target is the logical id, parameter or pseudo parameter named.
	Target string
	// Attribute is the GetAtt attribute ("Arn"), or the part after the dot
	// of ${Resource.Attribute} in Fn::Sub.
	Attribute string
}

var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// References returns every reference that v holds, at any depth. Names
// that Fn::Sub binds in its own variable map are not references.
func References(v any) []Reference {
	var out []Reference
	var walk func(v any, bound map[string]bool)
	walk = func(v any, bound map[string]bool) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e, bound)
			}
		case map[string]any:
			if len(v) == 1 {
				if s, ok := v["Ref"].(string); ok {
					out = append(out, Reference{Kind: "Ref", Target: s})
					return
				}
				if ga, ok := v["Fn::GetAtt"].([]any); ok && len(ga) >= 1 {
					ref := Reference{Kind: "Fn::GetAtt"}
					ref.Target, _ = ga[0].(string)
					if len(ga) > 1 {
						ref.Attribute, _ = ga[1].(string)
					}
					out = append(out, ref)
					return
				}
				if sub, ok := v["Fn::Sub"]; ok {
					str, vars := "", map[string]any(nil)
					switch s := sub.(type) {
					case string:
						str = s
					case []any:
						if len(s) > 0 {
							str, _ = s[0].(string)
						}
						if len(s) > 1 {
							vars, _ = s[1].(map[string]any)
							walk(s[1], bound)
						}
					}
					for _, m := range subVar.FindAllStringSubmatch(str, -1) {
						name, attr, _ := strings.Cut(m[1], ".")
						if vars[name] != nil || bound[name] {
							continue
						}
						out = append(out, Reference{Kind: "Fn::Sub", Target: name, Attribute: attr})
					}
					return
				}
			}
			for _, e := range v {
				walk(e, bound)
			}
		}
	}
	walk(v, nil)
	return out
}

// Exists reports whether name is something a reference can point at: a
// resource, a parameter, or a pseudo parameter (AWS::Region, ...).
func (d *Document) Exists(name string) bool {
	if strings.HasPrefix(name, "AWS::") {
		return true
	}
	if _, ok := d.Resources[name]; ok {
		return true
	}
	_, ok := d.Parameters[name]
	return ok
}

// Path returns the value at the dotted path in v ("Events.Route.Type"), or
// nil when any step is missing.
func Path(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// List returns v as a list: v itself when it is one, a one-element list
// otherwise, nil for nil.
func List(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}
