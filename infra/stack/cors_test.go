package stack

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin"
	"licenseadmin/infra/template"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
)

// TestCORS ensures the local API answers browsers as API Gateway does with
// the template's CorsConfiguration: a preflight from an allowed origin
// gets 204 with the allowed methods and headers, before any authorizer;
// a request from it gets its origin allowed and the exposed headers; an
// origin not allowed gets none of them.
func TestCORS(t *testing.T) {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]apigw.Handler{}
	for _, fn := range tpl.Functions {
		handlers[fn.LogicalID] = (&recorder{resp: events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"ETag": `"1"`}}}).handle
	}
	key, _ := keys(t)
	srv, err := newServer(tpl, handlers, newAuthorizer(key), log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	const portal = "https://portal.example.com"
	srv.allowOrigins(portal + ",https://other.example.com")
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, tc := range []struct {
		name, method, path, origin string
		preflight                  bool
		wantStatus                 int
		want                       map[string]string
	}{
		{"preflight of an authorized route", http.MethodOptions, "/v1/users/u1", portal, true, 204, map[string]string{
			"Access-Control-Allow-Origin":  portal,
			"Access-Control-Allow-Methods": "GET,POST,PATCH,DELETE",
			"Access-Control-Allow-Headers": "authorization,content-type,idempotency-key,if-match",
			"Access-Control-Max-Age":       "600",
		}},
		{"preflight of a public route", http.MethodOptions, "/v1/activations", portal, true, 204, map[string]string{
			"Access-Control-Allow-Origin": portal,
		}},
		{"preflight from another origin", http.MethodOptions, "/v1/users", "https://evil.example", true, 204, map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Allow-Headers": "",
		}},
		{"request from the portal", http.MethodGet, "/activate", portal, false, 200, map[string]string{
			"Access-Control-Allow-Origin":   portal,
			"Access-Control-Expose-Headers": "etag,idempotent-replayed,location,next-cursor",
			"Etag":                          `"1"`,
		}},
		{"request from another origin", http.MethodGet, "/activate", "https://evil.example", false, 200, map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Expose-Headers": "",
		}},
		{"OPTIONS without preflight headers is routed", http.MethodOptions, "/v1/users", portal, false, 404, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := apitest.HTTPRequest(t, tc.method, ts.URL+tc.path, nil, "")
			req.Header.Set("Origin", tc.origin)
			if tc.preflight {
				req.Header.Set("Access-Control-Request-Method", "PATCH")
				req.Header.Set("Access-Control-Request-Headers", "authorization,if-match")
			}
			resp, _ := apitest.HTTPDo(t, req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			for k, v := range tc.want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}
