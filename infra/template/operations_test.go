package template_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// The tests of this file hold template.yaml to what makes the stack safe
// and operable: least-privilege inline policies, a destination for every
// failure of an asynchronous invocation, alarms on every function, queue,
// the API, the table and SES, and no reference to anything that does not
// exist.

const (
	typeFunction = "AWS::Serverless::Function"
	typeAlarm    = "AWS::CloudWatch::Alarm"
	typeQueue    = "AWS::SQS::Queue"
)

func realDocument(t *testing.T) *template.Document {
	t.Helper()
	d, err := template.ParseDocument(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// statements returns the Allow statements of a function's inline policies,
// and an error for each policy that is not an inline policy document (a
// managed policy name or ARN, or a SAM policy template such as
// DynamoDBCrudPolicy, which grant more than the function uses).
func statements(fn template.Resource) (stmts []map[string]any, errs []string) {
	for _, p := range template.List(fn.Properties["Policies"]) {
		m, ok := p.(map[string]any)
		if !ok || m["Statement"] == nil {
			errs = append(errs, fmt.Sprintf("%v is not an inline policy document: write the statements with the actions the function uses", p))
			continue
		}
		for _, s := range template.List(m["Statement"]) {
			sm, _ := s.(map[string]any)
			if sm["Effect"] == "Allow" {
				stmts = append(stmts, sm)
			}
		}
	}
	return stmts, errs
}

// resourceStarActions need Resource "*": they do not support resource-level
// permissions.
var resourceStarActions = map[string]bool{
	"xray:PutTraceSegments":    true,
	"xray:PutTelemetryRecords": true,
	"cloudwatch:PutMetricData": true,
}

// writeActions change state; a function that only answers GET routes must
// not hold them (PutItem stays allowed: the cursor key is created on first
// use).
var writeActions = map[string]bool{
	"dynamodb:UpdateItem":     true,
	"dynamodb:DeleteItem":     true,
	"dynamodb:BatchWriteItem": true,
	"s3:PutObject":            true,
	"s3:DeleteObject":         true,
	"sqs:SendMessage":         true,
	"sqs:DeleteMessage":       true,
	"ses:SendEmail":           true,
	"ses:SendRawEmail":        true,
	"lambda:InvokeFunction":   true,
}

// touchesNothing names the functions that call no AWS service, and why:
// they get no policy statement at all (only the execution role's logs).
// None today: the activation page, the last, reads its token's language.
var touchesNothing = map[string]string{}

// TestFunctionPoliciesLeastPrivilege ensures every function has inline
// policies naming each action it may use: no wildcard action, no
// NotAction, no Resource "*" except for the actions that need it, no
// managed or SAM template policy, and no write action for a function that
// only serves GET routes.
func TestFunctionPoliciesLeastPrivilege(t *testing.T) {
	d := realDocument(t)
	tpl := realTemplate(t)
	for _, fn := range d.OfType(typeFunction) {
		stmts, errs := statements(fn)
		for _, e := range errs {
			t.Errorf("%s: %s", fn.LogicalID, e)
		}
		if _, none := touchesNothing[fn.LogicalID]; none != (len(stmts) == 0) {
			if none {
				t.Errorf("%s: has policy statements, but it calls no AWS service (touchesNothing): drop them", fn.LogicalID)
			} else {
				t.Errorf("%s: no inline policy statement: every function but those of touchesNothing reads the table at least", fn.LogicalID)
			}
		}
		readOnly := false
		if f, ok := tpl.Function(fn.LogicalID); ok && len(f.Routes) > 0 {
			readOnly = true
			for _, r := range f.Routes {
				readOnly = readOnly && r.Method == "GET"
			}
		}
		for _, s := range stmts {
			if s["NotAction"] != nil || s["NotResource"] != nil {
				t.Errorf("%s: NotAction/NotResource grants everything else: list what is allowed", fn.LogicalID)
			}
			actions := template.List(s["Action"])
			if len(actions) == 0 {
				t.Errorf("%s: a statement without Action", fn.LogicalID)
			}
			starOK := true
			for _, a := range actions {
				name, ok := a.(string)
				switch {
				case !ok:
					t.Errorf("%s: action %v is not a plain string", fn.LogicalID, a)
				case strings.Contains(name, "*"):
					t.Errorf("%s: action %q has a wildcard: name each action", fn.LogicalID, name)
				case !strings.Contains(name, ":"):
					t.Errorf("%s: action %q is not service:Action", fn.LogicalID, name)
				}
				if readOnly && writeActions[name] {
					t.Errorf("%s serves only GET routes but may %s", fn.LogicalID, name)
				}
				starOK = starOK && resourceStarActions[name]
			}
			resources := template.List(s["Resource"])
			if len(resources) == 0 {
				t.Errorf("%s: a statement without Resource", fn.LogicalID)
			}
			for _, r := range resources {
				if str, ok := r.(string); ok && strings.Contains(str, "*") && (str != "*" || !starOK) {
					t.Errorf("%s: Resource %q for %v: name the resources (the table's ARN, its index, the queue)", fn.LogicalID, str, actions)
				}
			}
		}
	}
}

// asyncEventTypes are the event sources that invoke a function
// asynchronously: Lambda retries a failed event, then drops it unless an
// on-failure destination keeps it.
var asyncEventTypes = map[string]bool{
	"S3": true, "SNS": true, "Schedule": true, "ScheduleV2": true, "EventBridgeRule": true,
	"CloudWatchEvent": true, "CloudWatchLogs": true, "IoTRule": true, "Cognito": true,
}

// asyncFunctions returns the functions invoked asynchronously: by an
// asynchronous event source, by another function that may invoke them, or
// configured with EventInvokeConfig.
func asyncFunctions(d *template.Document) map[string]string {
	async := map[string]string{}
	for _, fn := range d.OfType(typeFunction) {
		if fn.Properties["EventInvokeConfig"] != nil {
			async[fn.LogicalID] = "it has an EventInvokeConfig"
		}
		events, _ := fn.Properties["Events"].(map[string]any)
		for name, ev := range events {
			if typ, _ := template.Path(ev, "Type").(string); asyncEventTypes[typ] {
				async[fn.LogicalID] = fmt.Sprintf("its %s event %s invokes it asynchronously", typ, name)
			}
		}
		stmts, _ := statements(fn)
		for _, s := range stmts {
			invokes := false
			for _, a := range template.List(s["Action"]) {
				invokes = invokes || a == "lambda:InvokeFunction"
			}
			if !invokes {
				continue
			}
			for _, ref := range template.References(s["Resource"]) {
				if target, ok := d.Resources[ref.Target]; ok && target.Type == typeFunction {
					async[ref.Target] = fmt.Sprintf("%s may invoke it", fn.LogicalID)
				}
			}
		}
	}
	return async
}

// failureQueue returns the queue that v (a Destination or
// deadLetterTargetArn) names, or "".
func failureQueue(d *template.Document, v any) string {
	for _, ref := range template.References(v) {
		if r, ok := d.Resources[ref.Target]; ok && r.Type == typeQueue {
			return ref.Target
		}
	}
	return ""
}

// TestAsyncFunctionsHaveDestinations ensures no event is lost silently:
// every asynchronously invoked function has an on-failure destination
// (SQS), a bounded number of retries and a maximum event age; every stream
// event source an on-failure destination and bounded retries; every queue
// a function reads a dead-letter queue.
func TestAsyncFunctionsHaveDestinations(t *testing.T) {
	d := realDocument(t)
	async := asyncFunctions(d)
	ids := slices.Sorted(maps.Keys(async))
	for _, id := range ids {
		eic, _ := d.Resources[id].Properties["EventInvokeConfig"].(map[string]any)
		if eic == nil {
			t.Errorf("%s is invoked asynchronously (%s) but has no EventInvokeConfig: add DestinationConfig.OnFailure (SQS), MaximumRetryAttempts and MaximumEventAgeInSeconds", id, async[id])
			continue
		}
		if typ := template.Path(eic, "DestinationConfig.OnFailure.Type"); typ != "SQS" {
			t.Errorf("%s: EventInvokeConfig.DestinationConfig.OnFailure.Type is %v, want SQS", id, typ)
		}
		if failureQueue(d, template.Path(eic, "DestinationConfig.OnFailure.Destination")) == "" {
			t.Errorf("%s: the on-failure destination names no queue of the template", id)
		}
		if n, ok := eic["MaximumRetryAttempts"].(int); !ok || n < 0 || n > 2 {
			t.Errorf("%s: MaximumRetryAttempts %v, want 0 to 2", id, eic["MaximumRetryAttempts"])
		}
		if n, ok := eic["MaximumEventAgeInSeconds"].(int); !ok || n < 60 || n > 21600 {
			t.Errorf("%s: MaximumEventAgeInSeconds %v, want 60 to 21600", id, eic["MaximumEventAgeInSeconds"])
		}
	}
	for _, fn := range d.OfType(typeFunction) {
		events, _ := fn.Properties["Events"].(map[string]any)
		for name, ev := range events {
			switch template.Path(ev, "Type") {
			case "DynamoDB", "Kinesis":
				props := template.Path(ev, "Properties")
				if failureQueue(d, template.Path(props, "DestinationConfig.OnFailure.Destination")) == "" {
					t.Errorf("%s: stream event %s has no on-failure queue (DestinationConfig.OnFailure)", fn.LogicalID, name)
				}
				if n, ok := template.Path(props, "MaximumRetryAttempts").(int); !ok || n < 0 {
					t.Errorf("%s: stream event %s retries a failing batch forever: set MaximumRetryAttempts", fn.LogicalID, name)
				}
			case "SQS":
				q := failureQueue(d, template.Path(ev, "Properties.Queue"))
				if q == "" {
					t.Errorf("%s: SQS event %s reads no queue of the template", fn.LogicalID, name)
					continue
				}
				if failureQueue(d, template.Path(d.Resources[q].Properties, "RedrivePolicy.deadLetterTargetArn")) == "" {
					t.Errorf("%s: queue %s (read by %s) has no dead-letter queue (RedrivePolicy)", fn.LogicalID, q, name)
				}
			}
		}
	}
}

// TestReferencesExist ensures every Ref, Fn::GetAtt and ${} of Fn::Sub in
// resources and outputs names a resource, a parameter or a pseudo
// parameter, every GetAtt a resource, and every Condition a condition.
func TestReferencesExist(t *testing.T) {
	d := realDocument(t)
	check := func(where string, v any) {
		for _, ref := range template.References(v) {
			_, isResource := d.Resources[ref.Target]
			switch {
			case !d.Exists(ref.Target):
				t.Errorf("%s: %s %q names nothing of the template", where, ref.Kind, ref.Target)
			case ref.Kind == "Fn::GetAtt" && !isResource:
				t.Errorf("%s: Fn::GetAtt %q is not a resource", where, ref.Target)
			}
		}
	}
	for id, r := range d.Resources {
		check(id, r.Properties)
		if r.Condition != "" && d.Conditions[r.Condition] == nil {
			t.Errorf("%s: Condition %q is not in Conditions", id, r.Condition)
		}
	}
	for id, o := range d.Outputs {
		check("output "+id, o)
	}
	check("Globals", d.Globals)
}

// metricRef is one metric an alarm watches.
type metricRef struct {
	namespace, name string
	dims            map[string]any // dimension name -> value
}

// alarmMetrics returns the metrics an alarm watches, directly or in its
// metric math.
func alarmMetrics(a template.Resource) []metricRef {
	dims := func(v any) map[string]any {
		out := map[string]any{}
		for _, d := range template.List(v) {
			if name, ok := template.Path(d, "Name").(string); ok {
				out[name] = template.Path(d, "Value")
			}
		}
		return out
	}
	var out []metricRef
	if name, ok := a.Properties["MetricName"].(string); ok {
		ns, _ := a.Properties["Namespace"].(string)
		out = append(out, metricRef{ns, name, dims(a.Properties["Dimensions"])})
	}
	for _, m := range template.List(a.Properties["Metrics"]) {
		metric := template.Path(m, "MetricStat.Metric")
		if metric == nil {
			continue
		}
		ns, _ := template.Path(metric, "Namespace").(string)
		name, _ := template.Path(metric, "MetricName").(string)
		out = append(out, metricRef{ns, name, dims(template.Path(metric, "Dimensions"))})
	}
	return out
}

// refersTo reports whether v is a Ref or GetAtt of id.
func refersTo(v any, id string) bool {
	for _, r := range template.References(v) {
		if r.Target == id {
			return true
		}
	}
	return false
}

// watched reports whether some alarm watches namespace/name with a
// dimension dim whose value refers to resource id ("" dim: any alarm on
// that metric).
func watched(d *template.Document, namespace, name, dim, id string) bool {
	for _, a := range d.OfType(typeAlarm) {
		for _, m := range alarmMetrics(a) {
			if m.namespace != namespace || m.name != name {
				continue
			}
			if dim == "" || refersTo(m.dims[dim], id) {
				return true
			}
		}
	}
	return false
}

// TestAlarms ensures the alarms an operator needs exist and notify the
// AlarmTopicArn topic: errors and throttles of every function, 5xx of the
// API, throttled requests of the table, SES bounce and complaint rates,
// and the depth of every dead-letter and on-failure queue.
func TestAlarms(t *testing.T) {
	d := realDocument(t)
	if d.Parameters["AlarmTopicArn"] == nil {
		t.Fatal("no AlarmTopicArn parameter: the SNS topic the alarms notify")
	}
	alarms := d.OfType(typeAlarm)
	if len(alarms) == 0 {
		t.Fatal("no alarms")
	}
	if topic, ok := d.Resources["AlarmTopic"]; !ok || topic.Type != "AWS::SNS::Topic" || topic.Condition == "" {
		t.Error("no AlarmTopic (AWS::SNS::Topic) created on the condition that AlarmTopicArn is empty")
	}
	for _, a := range alarms {
		for _, prop := range []string{"AlarmActions", "OKActions"} {
			if !refersTo(a.Properties[prop], "AlarmTopicArn") || !refersTo(a.Properties[prop], "AlarmTopic") {
				t.Errorf("alarm %s: %s does not notify AlarmTopicArn, or the stack's AlarmTopic when it is empty", a.LogicalID, prop)
			}
		}
		if a.Properties["AlarmDescription"] == nil {
			t.Errorf("alarm %s has no AlarmDescription: say what it means and what to do (docs/operations.md, alarms)", a.LogicalID)
		}
		if len(alarmMetrics(a)) == 0 {
			t.Errorf("alarm %s watches no metric", a.LogicalID)
		}
	}
	for _, fn := range d.OfType(typeFunction) {
		for _, metric := range []string{"Errors", "Throttles"} {
			if !watched(d, "AWS/Lambda", metric, "FunctionName", fn.LogicalID) {
				t.Errorf("no alarm watches the %s of %s (AWS/Lambda, FunctionName)", metric, fn.LogicalID)
			}
		}
	}
	if !watched(d, "AWS/ApiGateway", "5xx", "ApiId", "Api") {
		t.Error("no alarm watches the API's 5xx (AWS/ApiGateway 5xx, ApiId)")
	}
	if !watched(d, "AWS/DynamoDB", "ReadThrottleEvents", "TableName", "Table") || !watched(d, "AWS/DynamoDB", "WriteThrottleEvents", "TableName", "Table") {
		t.Error("no alarm watches the table's throttled reads and writes (AWS/DynamoDB Read/WriteThrottleEvents, TableName)")
	}
	for metric, why := range map[string]string{
		"EmailsRejected": "emails SES refuses for good (unverified sender, sandbox) would go unnoticed",
		"EmailsDeferred": "an SES outage would go unnoticed for a day: deliveries left to the sweeper fail no function",
		"EmailsGivenUp":  "emails nobody received would go unnoticed",
	} {
		if !watched(d, "LicenseAdmin", metric, "", "") {
			t.Errorf("no alarm watches %s: %s", metric, why)
		}
	}
	for _, m := range []string{"Reputation.BounceRate", "Reputation.ComplaintRate"} {
		if !watched(d, "AWS/SES", m, "", "") {
			t.Errorf("no alarm watches SES's %s", m)
		}
	}
}

// deadLetterQueues returns the queues that receive what failed: the
// dead-letter queues of queues and the on-failure destinations of
// functions and stream event sources, each with who sends to it.
func deadLetterQueues(d *template.Document) map[string]string {
	dlqs := map[string]string{}
	for _, q := range d.OfType(typeQueue) {
		if dlq := failureQueue(d, template.Path(q.Properties, "RedrivePolicy.deadLetterTargetArn")); dlq != "" {
			dlqs[dlq] = "dead-letter queue of " + q.LogicalID
		}
	}
	for _, fn := range d.OfType(typeFunction) {
		if q := failureQueue(d, template.Path(fn.Properties, "EventInvokeConfig.DestinationConfig.OnFailure.Destination")); q != "" {
			dlqs[q] = "on-failure destination of " + fn.LogicalID
		}
		events, _ := fn.Properties["Events"].(map[string]any)
		for name, ev := range events {
			if q := failureQueue(d, template.Path(ev, "Properties.DestinationConfig.OnFailure.Destination")); q != "" {
				dlqs[q] = fmt.Sprintf("on-failure destination of %s's %s", fn.LogicalID, name)
			}
		}
	}
	return dlqs
}

// TestDeadLetterQueuesHaveAlarms ensures a message that lands in a
// dead-letter or on-failure queue pages someone: an alarm on the queue's
// ApproximateNumberOfMessagesVisible above 0.
func TestDeadLetterQueuesHaveAlarms(t *testing.T) {
	d := realDocument(t)
	dlqs := deadLetterQueues(d)
	if len(dlqs) == 0 {
		t.Fatal("no dead-letter queue found: the usage queue, at least, has one")
	}
	for q, why := range dlqs {
		found := false
		for _, a := range d.OfType(typeAlarm) {
			for _, m := range alarmMetrics(a) {
				if m.namespace == "AWS/SQS" && m.name == "ApproximateNumberOfMessagesVisible" && refersTo(m.dims["QueueName"], q) {
					th, _ := a.Properties["Threshold"].(int)
					op := a.Properties["ComparisonOperator"]
					if (op == "GreaterThanThreshold" && th == 0) || (op == "GreaterThanOrEqualToThreshold" && th == 1) {
						found = true
					} else {
						t.Errorf("alarm %s on %s: want depth > 0 (GreaterThanThreshold 0), got %v %v", a.LogicalID, q, op, a.Properties["Threshold"])
					}
				}
			}
		}
		if !found {
			t.Errorf("queue %s (%s) has no alarm on ApproximateNumberOfMessagesVisible > 0", q, why)
		}
	}
}

// TestTracingAndAccessLogs ensures X-Ray tracing is on for every function
// and the API writes access logs to a log group that expires.
func TestTracingAndAccessLogs(t *testing.T) {
	d := realDocument(t)
	if got := template.Path(d.Globals, "Function.Tracing"); got != "Active" {
		t.Errorf("Globals.Function.Tracing = %v, want Active", got)
	}
	for _, fn := range d.OfType(typeFunction) {
		if tr, ok := fn.Properties["Tracing"]; ok && tr != "Active" {
			t.Errorf("%s: Tracing %v overrides Globals' Active", fn.LogicalID, tr)
		}
	}
	for _, api := range d.OfType("AWS::Serverless::HttpApi") {
		dest := template.Path(api.Properties, "AccessLogSettings.DestinationArn")
		if dest == nil || template.Path(api.Properties, "AccessLogSettings.Format") == nil {
			t.Errorf("%s: no AccessLogSettings (DestinationArn and Format)", api.LogicalID)
			continue
		}
		ok := false
		for _, ref := range template.References(dest) {
			if lg, found := d.Resources[ref.Target]; found && lg.Type == "AWS::Logs::LogGroup" {
				ok = lg.Properties["RetentionInDays"] != nil
			}
		}
		if !ok {
			t.Errorf("%s: access logs go to no log group of the template with RetentionInDays", api.LogicalID)
		}
	}
}
