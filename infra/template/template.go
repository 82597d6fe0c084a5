package template

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Resource types this package interprets.
const (
	typeFunction = "AWS::Serverless::Function"
	typeHTTPAPI  = "AWS::Serverless::HttpApi"
	typeTable    = "AWS::DynamoDB::Table"
)

// defaultTimeout is Lambda's timeout of a function that sets none.
const defaultTimeout = 3 * time.Second

// TableLogicalID is the logical id of the application's table in the
// template; TableInput reads it (or the template's only table).
const TableLogicalID = "Table"

// Template is the part of a SAM template that the local stack and the tests
// use: the functions with their HTTP routes, and the table definition.
type Template struct {
	// Functions lists the AWS::Serverless::Function resources sorted by
	// logical id, so that output and errors are stable.
	Functions []Function
	// CORS is the HTTP API's CorsConfiguration, nil when it has none.
	CORS *CORS

	resources map[string]resource
}

// CORS is an HTTP API's CorsConfiguration: API Gateway answers preflight
// requests with it and adds its headers to the responses of allowed
// origins, and so does the local API.
type CORS struct {
	// AllowOrigins are the allowed origins ("*" for any). When the
	// template takes them from a parameter (OriginsParameter), they are
	// the parameter's default, split at commas: none without a default.
	AllowOrigins     []string
	OriginsParameter string
	AllowMethods     []string
	AllowHeaders     []string
	ExposeHeaders    []string
	// MaxAge is how many seconds a browser may keep a preflight's answer.
	MaxAge int
}

// Function is one AWS::Serverless::Function of the template.
type Function struct {
	// LogicalID is the resource's name in the template; the local API uses
	// it to find the function's handler.
	LogicalID string
	// CodeURI is the function's CodeUri (or the Globals one), "" when it is
	// not a plain string.
	CodeURI string
	// BuildMethod is Metadata.BuildMethod ("makefile" for this project).
	BuildMethod string
	// Routes are the function's HttpApi events, sorted by path then method.
	Routes []Route
	// Schedules are the ScheduleExpression of the function's ScheduleV2
	// (EventBridge Scheduler) and Schedule events, such as
	// "rate(5 minutes)".
	Schedules []string
	// Timeout is the function's Timeout (or the Globals one; 3 s, Lambda's
	// default, when neither is set): the deadline of each invocation.
	Timeout time.Duration
	// Policies is the function's Policies property as a list, with
	// intrinsic functions in their long form ({"Fn::GetAtt": [...]}), so
	// that tests can check which actions and resources each function gets.
	Policies []any
}

// Route is one HttpApi event: the method and path template that API Gateway
// routes to the function.
type Route struct {
	// Method is upper-case; "ANY" matches every method.
	Method string
	// Path is the route's path template, such as /v1/users/{userId};
	// "$default" is the catch-all route.
	Path string
	// Authorizer names the route's authorizer ("" when the route is public).
	Authorizer string
	// Public is true when no authorizer guards the route (Auth.Authorizer
	// NONE, or no default authorizer on the API).
	Public bool
	// Scopes are the route's AuthorizationScopes; a token needs one of them.
	Scopes []string
}

// Every returns how often a schedule expression "rate(N unit)" runs; it
// fails for any other expression (cron, at), which the local stack does
// not emulate.
func Every(expr string) (time.Duration, error) {
	inner, ok := strings.CutPrefix(expr, "rate(")
	inner, ok2 := strings.CutSuffix(inner, ")")
	fields := strings.Fields(inner)
	if !ok || !ok2 || len(fields) != 2 {
		return 0, fmt.Errorf("schedule %q: want rate(N minutes|hours|days)", expr)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("schedule %q: want a positive whole number", expr)
	}
	unit := map[string]time.Duration{"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour, "hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}[fields[1]]
	if unit == 0 {
		return 0, fmt.Errorf("schedule %q: unknown unit %q", expr, fields[1])
	}
	return time.Duration(n) * unit, nil
}

// Key returns the route key that API Gateway puts in events: "METHOD /path",
// or "$default" for the catch-all route.
func (r Route) Key() string {
	if r.Path == "$default" {
		return r.Path
	}
	return r.Method + " " + r.Path
}

type resource struct {
	Type       string         `yaml:"Type"`
	Metadata   map[string]any `yaml:"Metadata"`
	Properties yaml.Node      `yaml:"Properties"`
}

type document struct {
	Globals struct {
		Function struct {
			CodeURI any `yaml:"CodeUri"`
			Timeout int `yaml:"Timeout"`
		} `yaml:"Function"`
		HTTPAPI struct {
			Auth apiAuth `yaml:"Auth"`
		} `yaml:"HttpApi"`
	} `yaml:"Globals"`
	Resources  map[string]resource `yaml:"Resources"`
	Parameters map[string]struct {
		Default any `yaml:"Default"`
	} `yaml:"Parameters"`
}

type apiAuth struct {
	DefaultAuthorizer string `yaml:"DefaultAuthorizer"`
}

type functionProps struct {
	CodeURI  any              `yaml:"CodeUri"`
	Timeout  int              `yaml:"Timeout"`
	Policies any              `yaml:"Policies"`
	Events   map[string]event `yaml:"Events"`
}

type event struct {
	Type       string    `yaml:"Type"`
	Properties yaml.Node `yaml:"Properties"`
}

type httpAPIEvent struct {
	APIID  any    `yaml:"ApiId"`
	Method string `yaml:"Method"`
	Path   string `yaml:"Path"`
	Auth   struct {
		Authorizer          string   `yaml:"Authorizer"`
		AuthorizationScopes []string `yaml:"AuthorizationScopes"`
	} `yaml:"Auth"`
}

type httpAPIProps struct {
	Auth apiAuth `yaml:"Auth"`
	CORS *struct {
		AllowOrigins  any      `yaml:"AllowOrigins"`
		AllowMethods  []string `yaml:"AllowMethods"`
		AllowHeaders  []string `yaml:"AllowHeaders"`
		ExposeHeaders []string `yaml:"ExposeHeaders"`
		MaxAge        int      `yaml:"MaxAge"`
	} `yaml:"CorsConfiguration"`
}

// Parse reads a SAM template. It returns an error when the YAML is invalid,
// when there is no Resources section, or when a function or route cannot be
// read; the error names the resource.
func Parse(b []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	expandIntrinsics(&root)
	var doc document
	if err := root.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(doc.Resources) == 0 {
		return nil, errors.New("parse template: no Resources")
	}
	t := &Template{resources: doc.Resources}
	cors, err := t.cors(&doc)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	t.CORS = cors
	for _, id := range slices.Sorted(maps.Keys(doc.Resources)) {
		r := doc.Resources[id]
		if r.Type != typeFunction {
			continue
		}
		fn, err := t.function(id, r, &doc)
		if err != nil {
			return nil, fmt.Errorf("parse template: function %s: %w", id, err)
		}
		t.Functions = append(t.Functions, fn)
	}
	return t, nil
}

// ParseFile reads and parses the SAM template at path.
func ParseFile(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Function returns the function named id, and false when there is none.
func (t *Template) Function(id string) (Function, bool) {
	for _, f := range t.Functions {
		if f.LogicalID == id {
			return f, true
		}
	}
	return Function{}, false
}

func (t *Template) function(id string, r resource, doc *document) (Function, error) {
	var p functionProps
	if err := decodeOptional(&r.Properties, &p); err != nil {
		return Function{}, fmt.Errorf("properties: %w", err)
	}
	fn := Function{LogicalID: id, Policies: List(p.Policies)} // SAM accepts one policy or a list of them
	codeURI := p.CodeURI
	if codeURI == nil {
		codeURI = doc.Globals.Function.CodeURI
	}
	fn.CodeURI, _ = codeURI.(string)
	fn.Timeout = defaultTimeout
	if p.Timeout > 0 {
		fn.Timeout = time.Duration(p.Timeout) * time.Second
	} else if doc.Globals.Function.Timeout > 0 {
		fn.Timeout = time.Duration(doc.Globals.Function.Timeout) * time.Second
	}
	fn.BuildMethod, _ = r.Metadata["BuildMethod"].(string)
	for _, name := range slices.Sorted(maps.Keys(p.Events)) {
		ev := p.Events[name]
		if ev.Type == "ScheduleV2" || ev.Type == "Schedule" {
			var sp struct {
				ScheduleExpression string `yaml:"ScheduleExpression"`
			}
			if err := decodeOptional(&ev.Properties, &sp); err != nil || sp.ScheduleExpression == "" {
				return Function{}, fmt.Errorf("event %s: a %s event needs a ScheduleExpression", name, ev.Type)
			}
			fn.Schedules = append(fn.Schedules, sp.ScheduleExpression)
			continue
		}
		if ev.Type != "HttpApi" {
			continue
		}
		route, err := t.route(ev, doc)
		if err != nil {
			return Function{}, fmt.Errorf("event %s: %w", name, err)
		}
		fn.Routes = append(fn.Routes, route)
	}
	sort.Slice(fn.Routes, func(i, j int) bool {
		if fn.Routes[i].Path != fn.Routes[j].Path {
			return fn.Routes[i].Path < fn.Routes[j].Path
		}
		return fn.Routes[i].Method < fn.Routes[j].Method
	})
	return fn, nil
}

// route reads one HttpApi event. Without Method and Path the event is the
// API's $default route, as in SAM.
func (t *Template) route(ev event, doc *document) (Route, error) {
	var p httpAPIEvent
	if err := decodeOptional(&ev.Properties, &p); err != nil {
		return Route{}, err
	}
	r := Route{Method: strings.ToUpper(p.Method), Path: p.Path, Scopes: p.Auth.AuthorizationScopes}
	if r.Path == "" && r.Method == "" {
		r.Path, r.Method = "$default", "ANY"
	}
	if r.Path == "" || r.Method == "" {
		return Route{}, errors.New("an HttpApi event needs both Method and Path")
	}
	if r.Method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
		r.Method = "ANY"
	}
	if r.Path != "$default" && !strings.HasPrefix(r.Path, "/") {
		return Route{}, fmt.Errorf("path %q must start with /", r.Path)
	}
	r.Authorizer = p.Auth.Authorizer
	if r.Authorizer == "" {
		r.Authorizer = t.defaultAuthorizer(refName(p.APIID), doc)
	}
	if r.Authorizer == "NONE" {
		r.Authorizer = ""
	}
	r.Public = r.Authorizer == ""
	return r, nil
}

// defaultAuthorizer returns the DefaultAuthorizer of the HttpApi named
// apiID, falling back to Globals.HttpApi as SAM merges it.
func (t *Template) defaultAuthorizer(apiID string, doc *document) string {
	if r, ok := t.resources[apiID]; ok && r.Type == typeHTTPAPI {
		var p httpAPIProps
		if err := decodeOptional(&r.Properties, &p); err == nil && p.Auth.DefaultAuthorizer != "" {
			return p.Auth.DefaultAuthorizer
		}
	}
	return doc.Globals.HTTPAPI.Auth.DefaultAuthorizer
}

// cors reads the CorsConfiguration of the template's first HttpApi.
func (t *Template) cors(doc *document) (*CORS, error) {
	for _, id := range slices.Sorted(maps.Keys(t.resources)) {
		r := t.resources[id]
		if r.Type != typeHTTPAPI {
			continue
		}
		var p httpAPIProps
		if err := decodeOptional(&r.Properties, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if p.CORS == nil {
			return nil, nil
		}
		c := &CORS{AllowMethods: p.CORS.AllowMethods, AllowHeaders: p.CORS.AllowHeaders, ExposeHeaders: p.CORS.ExposeHeaders, MaxAge: p.CORS.MaxAge}
		switch o := p.CORS.AllowOrigins.(type) {
		case []any:
			for _, v := range o {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("%s: AllowOrigins %v: want strings or a parameter", id, o)
				}
				c.AllowOrigins = append(c.AllowOrigins, s)
			}
		case map[string]any:
			c.OriginsParameter = refName(o)
			if c.OriginsParameter == "" {
				return nil, fmt.Errorf("%s: AllowOrigins %v: want strings or a parameter", id, o)
			}
			if def, ok := doc.Parameters[c.OriginsParameter].Default.(string); ok && def != "" {
				c.AllowOrigins = strings.Split(def, ",")
			}
		}
		return c, nil
	}
	return nil, nil
}

// decodeOptional decodes n into v, leaving v zero when n is absent.
func decodeOptional(n *yaml.Node, v any) error {
	if n.Kind == 0 {
		return nil
	}
	return n.Decode(v)
}

// eachEvent calls fn, in function then event name order, with the
// properties of every event of type typ decoded into an E; a property that
// does not decode, and fn's errors, stop the walk.
func eachEvent[E any](t *Template, typ string, fn func(id, name string, e *E) error) error {
	for _, id := range slices.Sorted(maps.Keys(t.resources)) {
		r := t.resources[id]
		if r.Type != typeFunction {
			continue
		}
		var p functionProps
		if err := decodeOptional(&r.Properties, &p); err != nil {
			return fmt.Errorf("template: function %s: %w", id, err)
		}
		for _, name := range slices.Sorted(maps.Keys(p.Events)) {
			ev := p.Events[name]
			if ev.Type != typ {
				continue
			}
			var e E
			if err := decodeOptional(&ev.Properties, &e); err != nil {
				return fmt.Errorf("template: function %s event %s: %w", id, name, err)
			}
			if err := fn(id, name, &e); err != nil {
				return err
			}
		}
	}
	return nil
}

// sources returns what fn makes of each event of type typ, in function
// then event name order; fn's errors stop the walk.
func sources[E, S any](t *Template, typ string, fn func(id, name string, e *E) (S, error)) ([]S, error) {
	var out []S
	err := eachEvent(t, typ, func(id, name string, e *E) error {
		src, err := fn(id, name, e)
		if err == nil {
			out = append(out, src)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FunctionsWithEvents returns the logical ids of the functions that have
// an event of type typ (SQS, S3, DynamoDB...), sorted.
func (t *Template) FunctionsWithEvents(typ string) []string {
	var out []string
	_ = eachEvent(t, typ, func(id, _ string, _ *struct{}) error {
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
		return nil
	})
	return out
}
