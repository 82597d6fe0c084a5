package main

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"licenseadmin/infra/stack"
	"licenseadmin/shared/apitest"
)

// TestRun ensures `run` serves the real template with the real handlers:
// it creates its table, prints where it listens and how to get a token,
// refuses a request without a token at the gateway, passes one with a
// token from `token` to the function, and stops on cancel.
func TestRun(t *testing.T) {
	s := apitest.StartStack(t, stack.Run, nil)
	url := s.API
	for _, want := range []string{"DynamoDB:  " + os.Getenv("DYNAMODB_ENDPOINT"), "Table:     " + s.Table + " (created", "go run ./infra/local token you@example.com", "Email:     " + os.Getenv("SES_ENDPOINT")} {
		if !strings.Contains(s.Stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, s.Stdout.String())
		}
	}

	resp, body := apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, url+"/v1/licenses", nil, ""))
	if resp.StatusCode != http.StatusUnauthorized || body != `{"message":"Unauthorized"}` {
		t.Errorf("no token: got %d %s, want the gateway's 401", resp.StatusCode, body)
	}
	var tokOut, stderr apitest.SyncBuffer
	if code := dispatch(context.Background(), []string{"token", "nobody@example.com"}, &env{Stdout: &tokOut, Stderr: &stderr, Getenv: s.Env.Getenv, Dir: s.Env.Dir}); code != 0 {
		t.Fatalf("token: exit %d: %s", code, stderr.String())
	}
	tok := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(tokOut.String())[1]
	resp, body = apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, url+"/v1/licenses", nil, tok))
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusUnauthorized || !strings.Contains(ct, "json") || strings.Contains(body, `"message":"`) {
		t.Errorf("with a token: got %d %s %s, want the function's own answer", resp.StatusCode, ct, body)
	}
	if !strings.Contains(s.Stdout.String(), "GET /v1/licenses") {
		t.Errorf("no request log line:\n%s", s.Stdout.String())
	}

	if err := s.Stop(t); err != nil {
		t.Errorf("run ended with %v: %s", err, s.Stderr.String())
	}
	if _, err := http.Get(url + "/v1/licenses"); err == nil {
		t.Error("the API still answers after run stopped")
	}
}
