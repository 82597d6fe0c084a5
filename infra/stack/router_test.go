package stack

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"licenseadmin/infra/template"
	"licenseadmin/shared/apitest"
)

// TestRouterMatch ensures requests reach the route API Gateway would pick:
// literal segments before parameters before greedy ones, a method's own
// route before ANY, decoded parameters, and no match (404) otherwise.
func TestRouterMatch(t *testing.T) {
	r, err := newRouter(mustParseTemplate(t, "testdata/template.yaml").Functions)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		function     string // "" for no match
		params       map[string]string
	}{
		{"GET", "/v1/users/u1", "GetUserFunction", map[string]string{"userId": "u1"}},
		{"GET", "/v1/users/me", "MeFunction", nil},
		{"GET", "/v1/users/a%20b", "GetUserFunction", map[string]string{"userId": "a b"}},
		{"GET", "/v1/users/a%2Fb", "GetUserFunction", map[string]string{"userId": "a/b"}},
		{"POST", "/v1/users/u1/license", "AssignLicenseFunction", map[string]string{"userId": "u1"}},
		{"DELETE", "/v1/users/u1/license", "AnyLicenseFunction", map[string]string{"userId": "u1"}},
		{"GET", "/files/a/b/c.txt", "FilesFunction", map[string]string{"proxy": "a/b/c.txt"}},
		{"GET", "/files/special/x", "SpecialFileFunction", map[string]string{"name": "x"}},
		{"GET", "/files/special/x/y", "FilesFunction", map[string]string{"proxy": "special/x/y"}},
		{"GET", "/activate", "ActivateFunction", nil},
		{"POST", "/v1/users/me", "", nil},
		{"GET", "/files", "", nil},
		{"GET", "/files/", "", nil},
		{"GET", "/v1/users", "", nil},
		{"GET", "/v1/users/", "", nil},
		{"GET", "/v1/users/u1/", "", nil},
		{"GET", "/V1/users/u1", "", nil},
		{"GET", "/", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rt, params, ok := r.match(tt.method, tt.path)
			if tt.function == "" {
				if ok {
					t.Fatalf("matched %s (%s), want no match", rt.function, rt.Key())
				}
				return
			}
			if !ok {
				t.Fatalf("no match, want %s", tt.function)
			}
			if rt.function != tt.function || !reflect.DeepEqual(params, tt.params) {
				t.Errorf("got %s %v, want %s %v", rt.function, params, tt.function, tt.params)
			}
		})
	}
}

// TestRouterDefault ensures $default catches what no other route matches,
// and only that.
func TestRouterDefault(t *testing.T) {
	r, err := newRouter([]template.Function{
		{LogicalID: "Default", Routes: []template.Route{{Method: "ANY", Path: "$default"}}},
		{LogicalID: "Health", Routes: []template.Route{{Method: "GET", Path: "/health"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/health": "Health", "/anything/else": "Default", "/": "Default"} {
		rt, _, ok := r.match("GET", path)
		if !ok || rt.function != want {
			t.Errorf("GET %s: got %v %v, want %s", path, rt, ok, want)
		}
	}
}

// TestNewRouterErrors ensures malformed path templates and duplicate routes
// stop the local API at start-up.
func TestNewRouterErrors(t *testing.T) {
	fn := func(id, method, path string) template.Function {
		return template.Function{LogicalID: id, Routes: []template.Route{{Method: method, Path: path}}}
	}
	tests := []struct {
		name string
		fns  []template.Function
		want string
	}{
		{"partial parameter", []template.Function{fn("A", "GET", "/a/x{id}")}, "whole segment"},
		{"unclosed parameter", []template.Function{fn("A", "GET", "/a/{id")}, "malformed"},
		{"greedy not last", []template.Function{fn("A", "GET", "/a/{p+}/b")}, "last segment"},
		{"duplicate", []template.Function{fn("A", "GET", "/a"), fn("B", "GET", "/a")}, "declared by both A and B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newRouter(tt.fns); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRoutingOverHTTP ensures the server invokes the matched function with
// the route key and path parameters, and answers 404 like API Gateway when
// nothing matches (no function invoked).
func TestRoutingOverHTTP(t *testing.T) {
	api := newTestAPI(t)
	key, _ := keys(t)
	tok := mustToken(t, key, validClaims(timeNow()))
	tests := []struct {
		method, path, function, routeKey string
		params                           map[string]string
	}{
		{"GET", "/v1/users/me", "MeFunction", "GET /v1/users/me", nil},
		{"GET", "/v1/users/u-1", "GetUserFunction", "GET /v1/users/{userId}", map[string]string{"userId": "u-1"}},
		{"PATCH", "/v1/users/u-1/license", "AnyLicenseFunction", "ANY /v1/users/{userId}/license", map[string]string{"userId": "u-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := apitest.HTTPDo(t, apitest.HTTPRequest(t, tt.method, api.URL+tt.path, nil, tok))
			if resp.StatusCode != 200 || !strings.Contains(body, tt.function) {
				t.Fatalf("got %d %s, want 200 from %s", resp.StatusCode, body, tt.function)
			}
			ev := api.funcs[tt.function].last(t)
			if ev.RouteKey != tt.routeKey || ev.RequestContext.RouteKey != tt.routeKey || !reflect.DeepEqual(ev.PathParameters, tt.params) {
				t.Errorf("event route %q/%q params %v, want %q %v", ev.RouteKey, ev.RequestContext.RouteKey, ev.PathParameters, tt.routeKey, tt.params)
			}
		})
	}
	t.Run("no route", func(t *testing.T) {
		resp, body := apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api.URL+"/nowhere", nil, tok))
		if resp.StatusCode != http.StatusNotFound || body != `{"message":"Not Found"}` {
			t.Errorf("got %d %s, want 404 {\"message\":\"Not Found\"}", resp.StatusCode, body)
		}
	})
}
