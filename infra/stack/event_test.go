package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/apitest"
)

// TestEventShape ensures the function receives the event API Gateway
// builds for payload 2.0. testdata/event-jwt.json follows the shape of a
// real HTTP API event with a JWT authorizer (aws-lambda-go's
// events/testdata/apigw-v2-request-jwt-authorizer.json); "*" marks values
// that change on every request, which must still be present.
func TestEventShape(t *testing.T) {
	api := newTestAPI(t)
	key, _ := keys(t)
	claims := validClaims(time.Now())
	claims["iat"], claims["exp"] = int64(1700000000), int64(4102444800)
	req := apitest.HTTPRequest(t, http.MethodPost, api.URL+"/v1/users/u%201/license?b=2&a=1&a=x%20y", strings.NewReader(`{"tier":"pro"}`), mustToken(t, key, claims))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "test-agent")
	req.Header.Add("X-Custom", "v1")
	req.Header.Add("X-Custom", "v2")
	req.Header.Set("Cookie", "c1=v1; c2=v2")
	resp, _ := apitest.HTTPDo(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev := api.funcs["AssignLicenseFunction"].last(t)

	b, err := os.ReadFile("testdata/event-jwt.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	got := asJSON(t, ev)
	// aws-lambda-go's type has no omitempty on requestContext.authentication;
	// API Gateway sends it only for mutual TLS, which the local API lacks.
	delete(got["requestContext"].(map[string]any), "authentication")
	for _, diff := range matchJSON("", want, got) {
		t.Error(diff)
	}

	if id := resp.Header.Get("Apigw-Requestid"); id == "" || id != ev.RequestContext.RequestID {
		t.Errorf("apigw-requestid header %q, event requestId %q", id, ev.RequestContext.RequestID)
	}
	if !regexp.MustCompile(`^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$`).MatchString(ev.RequestContext.Time) {
		t.Errorf("time %q is not in API Gateway's format", ev.RequestContext.Time)
	}
	if d := time.Since(time.UnixMilli(ev.RequestContext.TimeEpoch)); d < 0 || d > time.Minute {
		t.Errorf("timeEpoch %d is not now", ev.RequestContext.TimeEpoch)
	}
	if ev.Headers["authorization"] != req.Header.Get("Authorization") {
		t.Error("the authorization header is not forwarded as sent")
	}
}

// matchJSON lists the differences between want and got; a "*" in want
// accepts any value but requires the key.
func matchJSON(path string, want, got any) []string {
	if s, ok := want.(string); ok && s == "*" {
		if got == nil {
			return []string{path + ": missing"}
		}
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %v, want an object", path, got)}
		}
		var diffs []string
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := slices.Sorted(maps.Keys(keys))
		for _, k := range sorted {
			wv, inWant := w[k]
			gv, inGot := g[k]
			switch {
			case !inWant:
				diffs = append(diffs, fmt.Sprintf("%s.%s: unexpected %v", path, k, gv))
			case !inGot:
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing, want %v", path, k, wv))
			default:
				diffs = append(diffs, matchJSON(path+"."+k, wv, gv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, got, want)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, matchJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, got, want)}
		}
		return nil
	}
}

// TestEventBody ensures bodies are passed as text for text and JSON types
// and base64-encoded otherwise, as API Gateway does.
func TestEventBody(t *testing.T) {
	api := newTestAPI(t)
	tests := []struct {
		contentType string
		body        []byte
		wantBody    string
		wantBase64  bool
	}{
		{"application/json; charset=utf-8", []byte(`{"a":1}`), `{"a":1}`, false},
		{"application/problem+json", []byte(`{}`), `{}`, false},
		{"text/csv", []byte("a,b\n"), "a,b\n", false},
		{"application/octet-stream", []byte{0, 1, 2}, "AAEC", true},
		{"application/x-www-form-urlencoded", []byte("a=1"), "YT0x", true},
		{"", []byte("x"), "eA==", true},
		{"application/json", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			req := apitest.HTTPRequest(t, http.MethodPost, api.URL+"/v1/activations", bytes.NewReader(tt.body), "")
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			apitest.HTTPDo(t, req)
			ev := api.funcs["ActivateFunction"].last(t)
			if ev.Body != tt.wantBody || ev.IsBase64Encoded != tt.wantBase64 {
				t.Errorf("body %q base64 %v, want %q %v", ev.Body, ev.IsBase64Encoded, tt.wantBody, tt.wantBase64)
			}
		})
	}
}

// TestEventNoQueryNoCookies ensures absent query strings and cookies are
// absent from the event, not empty.
func TestEventNoQueryNoCookies(t *testing.T) {
	api := newTestAPI(t)
	apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api.URL+"/activate", nil, ""))
	got := asJSON(t, api.funcs["ActivateFunction"].last(t))
	for _, k := range []string{"queryStringParameters", "cookies", "pathParameters", "body"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %v, want absent", k, v)
		}
	}
	if got["rawQueryString"] != "" {
		t.Errorf("rawQueryString = %v, want empty", got["rawQueryString"])
	}
}
