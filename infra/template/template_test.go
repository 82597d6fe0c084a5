package template_test

import (
	"reflect"
	"strings"
	"testing"

	"licenseadmin/infra/template"
)

func mustParseFile(tb testing.TB, path string) *template.Template {
	tb.Helper()
	tpl, err := template.ParseFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return tpl
}

// TestParseFunctions ensures functions, their build settings and routes are
// read, with short tags tolerated, methods upper-cased, Globals applied and
// public routes recognised.
func TestParseFunctions(t *testing.T) {
	tpl := mustParseFile(t, "testdata/template.yaml")
	tests := []struct {
		id          string
		codeURI     string
		buildMethod string
		routes      []template.Route
	}{
		{"ActivateFunction", ".", "makefile", []template.Route{
			{Method: "GET", Path: "/activate", Public: true},
			{Method: "POST", Path: "/v1/activations", Public: true},
		}},
		{"AssignLicenseFunction", ".", "makefile", []template.Route{
			{Method: "POST", Path: "/v1/users/{userId}/license", Authorizer: "JwtAuthorizer"},
		}},
		{"ImportFunction", ".", "makefile", nil},
		{"TransferLicenseFunction", ".", "makefile", []template.Route{
			{Method: "POST", Path: "/v1/users/{userId}/license/transfer", Authorizer: "JwtAuthorizer", Scopes: []string{"licenses/write"}},
		}},
	}
	if len(tpl.Functions) != len(tests) {
		t.Fatalf("got %d functions, want %d", len(tpl.Functions), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			fn := tpl.Functions[i]
			if fn.LogicalID != tt.id || fn.CodeURI != tt.codeURI || fn.BuildMethod != tt.buildMethod {
				t.Errorf("got %s %q %q, want %s %q %q", fn.LogicalID, fn.CodeURI, fn.BuildMethod, tt.id, tt.codeURI, tt.buildMethod)
			}
			if !reflect.DeepEqual(fn.Routes, tt.routes) {
				t.Errorf("routes:\n got %+v\nwant %+v", fn.Routes, tt.routes)
			}
			if got, ok := tpl.Function(tt.id); !ok || got.LogicalID != tt.id {
				t.Errorf("Function(%q) = %v, %v", tt.id, got.LogicalID, ok)
			}
		})
	}
}

// TestParsePolicies ensures policies come back as a list with intrinsic
// functions in their long form, a single policy included.
func TestParsePolicies(t *testing.T) {
	tpl := mustParseFile(t, "testdata/template.yaml")
	tests := []struct {
		id   string
		want []any
	}{
		{"AssignLicenseFunction", []any{map[string]any{"Statement": []any{map[string]any{
			"Effect":   "Allow",
			"Action":   []any{"dynamodb:GetItem", "dynamodb:TransactWriteItems"},
			"Resource": map[string]any{"Fn::GetAtt": []any{"Table", "Arn"}},
		}}}}},
		{"TransferLicenseFunction", []any{map[string]any{"Statement": []any{map[string]any{
			"Effect":   "Allow",
			"Action":   "dynamodb:Query",
			"Resource": map[string]any{"Fn::Sub": "${Table.Arn}/index/*"},
		}}}}},
		{"ActivateFunction", nil},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			fn, _ := tpl.Function(tt.id)
			if !reflect.DeepEqual(fn.Policies, tt.want) {
				t.Errorf("got %#v\nwant %#v", fn.Policies, tt.want)
			}
		})
	}
}

// TestParseRoutes ensures the authorizer of a route is resolved as SAM does:
// explicit Authorizer, NONE, the API's default, Globals, or none at all; and
// that $default and ANY are understood.
func TestParseRoutes(t *testing.T) {
	const head = "Resources:\n" +
		"  Api:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n      Auth: {DefaultAuthorizer: Jwt}\n" +
		"  Bare:\n    Type: AWS::Serverless::HttpApi\n"
	fn := func(event string) string {
		return "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E:\n          Type: HttpApi\n          Properties: " + event + "\n"
	}
	tests := []struct {
		name string
		yaml string
		want template.Route
	}{
		{"api default", head + fn("{ApiId: !Ref Api, Method: get, Path: /a}"),
			template.Route{Method: "GET", Path: "/a", Authorizer: "Jwt"}},
		{"explicit NONE", head + fn("{ApiId: !Ref Api, Method: GET, Path: /a, Auth: {Authorizer: NONE}}"),
			template.Route{Method: "GET", Path: "/a", Public: true}},
		{"explicit other", head + fn("{ApiId: !Ref Api, Method: GET, Path: /a, Auth: {Authorizer: Other}}"),
			template.Route{Method: "GET", Path: "/a", Authorizer: "Other"}},
		{"api without default", head + fn("{ApiId: !Ref Bare, Method: GET, Path: /a}"),
			template.Route{Method: "GET", Path: "/a", Public: true}},
		{"globals default", "Globals:\n  HttpApi:\n    Auth: {DefaultAuthorizer: G}\n" + head + fn("{ApiId: Bare, Method: GET, Path: /a}"),
			template.Route{Method: "GET", Path: "/a", Authorizer: "G"}},
		{"any method", head + fn("{ApiId: !Ref Api, Method: any, Path: '/p/{proxy+}'}"),
			template.Route{Method: "ANY", Path: "/p/{proxy+}", Authorizer: "Jwt"}},
		{"default route", head + fn("{ApiId: !Ref Api}"),
			template.Route{Method: "ANY", Path: "$default", Authorizer: "Jwt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := template.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := tpl.Functions[0].Routes
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestRouteKey ensures route keys are written as API Gateway writes them.
func TestRouteKey(t *testing.T) {
	tests := []struct {
		route template.Route
		want  string
	}{
		{template.Route{Method: "POST", Path: "/v1/users/{userId}/license"}, "POST /v1/users/{userId}/license"},
		{template.Route{Method: "ANY", Path: "$default"}, "$default"},
	}
	for _, tt := range tests {
		if got := tt.route.Key(); got != tt.want {
			t.Errorf("Key() = %q, want %q", got, tt.want)
		}
	}
}

// TestParseErrors ensures broken templates are refused with a message that
// says what is wrong.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"invalid yaml", "Resources: [", "parse template"},
		{"no resources", "Description: x\n", "no Resources"},
		{"method without path", "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E: {Type: HttpApi, Properties: {Method: GET}}\n", "function F: event E"},
		{"relative path", "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E: {Type: HttpApi, Properties: {Method: GET, Path: x}}\n", "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := template.Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
