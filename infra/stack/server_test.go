package stack

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
)

// serveOne runs the local API over the test template with h answering
// ActivateFunction (a public route), and returns the response to one
// request to it.
func serveOne(t *testing.T, h apigw.Handler, body io.Reader) (*http.Response, string) {
	t.Helper()
	tpl := mustParseTemplate(t, "testdata/template.yaml")
	handlers := map[string]apigw.Handler{}
	for _, fn := range tpl.Functions {
		handlers[fn.LogicalID] = (&recorder{}).handle
	}
	handlers["ActivateFunction"] = h
	key, _ := keys(t)
	srv, err := newServer(tpl, handlers, newAuthorizer(key), log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	return apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodPost, ts.URL+"/v1/activations", body, ""))
}

func respond(resp events.APIGatewayV2HTTPResponse, err error) apigw.Handler {
	return func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return resp, err
	}
}

// TestResponseWriting ensures the function's response reaches the client
// as API Gateway writes it: status, headers, multi-value headers, cookies
// as Set-Cookie, and base64 bodies decoded.
func TestResponseWriting(t *testing.T) {
	resp, body := serveOne(t, respond(events.APIGatewayV2HTTPResponse{
		StatusCode:        201,
		Headers:           map[string]string{"Content-Type": "text/csv", "ETag": `"3"`},
		MultiValueHeaders: map[string][]string{"X-Multi": {"a", "b"}},
		Cookies:           []string{"s=1; HttpOnly", "t=2"},
		Body:              "AAEC",
		IsBase64Encoded:   true,
	}, nil), nil)
	if resp.StatusCode != 201 || body != "\x00\x01\x02" {
		t.Errorf("got %d %q, want 201 and the decoded body", resp.StatusCode, body)
	}
	want := map[string][]string{
		"Content-Type": {"text/csv"},
		"Etag":         {`"3"`},
		"X-Multi":      {"a", "b"},
		"Set-Cookie":   {"s=1; HttpOnly", "t=2"},
	}
	for k, v := range want {
		if got := resp.Header.Values(k); !reflect.DeepEqual(got, v) {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// TestGatewayErrors ensures what API Gateway answers itself: 500 when the
// function fails (error, panic or an invalid response), never showing the
// error, and 413 for bodies over 10 MB without invoking the function.
func TestGatewayErrors(t *testing.T) {
	invoked := false
	tests := []struct {
		name       string
		handler    apigw.Handler
		body       io.Reader
		wantStatus int
		wantBody   string
	}{
		{"handler error", respond(events.APIGatewayV2HTTPResponse{}, errors.New("secret detail")), nil, 500, `{"message":"Internal Server Error"}`},
		{"handler panic", func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			panic("boom")
		}, nil, 500, `{"message":"Internal Server Error"}`},
		{"no status code", respond(events.APIGatewayV2HTTPResponse{Body: "x"}, nil), nil, 500, `{"message":"Internal Server Error"}`},
		{"bad base64", respond(events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "!!", IsBase64Encoded: true}, nil), nil, 500, `{"message":"Internal Server Error"}`},
		{"body over 10 MB", func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			invoked = true
			return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
		}, strings.NewReader(strings.Repeat("x", maxBodyBytes+1)), 413, `{"message":"Request Entity Too Large"}`},
		{"body of 10 MB", respond(events.APIGatewayV2HTTPResponse{StatusCode: 204}, nil), strings.NewReader(strings.Repeat("x", maxBodyBytes)), 204, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := serveOne(t, tt.handler, tt.body)
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if invoked {
		t.Error("a function was invoked with a body over the limit")
	}
}

// TestInvokeContext ensures handlers get what the Lambda runtime gives
// them: a Lambda context with a request id and function ARN, and a
// deadline.
func TestInvokeContext(t *testing.T) {
	var lc *lambdacontext.LambdaContext
	hasDeadline := false
	serveOne(t, func(ctx context.Context, _ events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		lc, _ = lambdacontext.FromContext(ctx)
		_, hasDeadline = ctx.Deadline()
		return events.APIGatewayV2HTTPResponse{StatusCode: 204}, nil
	}, nil)
	if lc == nil || len(lc.AwsRequestID) != 36 || !strings.HasSuffix(lc.InvokedFunctionArn, ":function:ActivateFunction") {
		t.Errorf("lambda context = %+v", lc)
	}
	if !hasDeadline {
		t.Error("no deadline")
	}
}

// TestNewServerMissingHandlers ensures the local API refuses to start when
// a template function with routes has no handler, naming each one, and
// does not ask for handlers of functions without routes.
func TestNewServerMissingHandlers(t *testing.T) {
	tpl := mustParseTemplate(t, "testdata/template.yaml")
	handlers := map[string]apigw.Handler{}
	for _, fn := range tpl.Functions {
		handlers[fn.LogicalID] = (&recorder{}).handle
	}
	delete(handlers, "ImportFunction") // no HttpApi events: not needed
	key, _ := keys(t)
	if _, err := newServer(tpl, handlers, newAuthorizer(key), log.New(io.Discard, "", 0)); err != nil {
		t.Fatalf("complete registry: %v", err)
	}
	delete(handlers, "MeFunction")
	delete(handlers, "AdminFunction")
	_, err := newServer(tpl, handlers, newAuthorizer(key), log.New(io.Discard, "", 0))
	if err == nil || !strings.Contains(err.Error(), "AdminFunction, MeFunction") || !strings.Contains(err.Error(), "handlers.go") {
		t.Errorf("got %v, want an error naming AdminFunction, MeFunction and handlers.go", err)
	}
}

// TestRequestLogHidesTokens ensures the local request log never shows an
// activation token: it is a credential, and the log is shared freely.
func TestRequestLogHidesTokens(t *testing.T) {
	tpl := mustParseTemplate(t, "testdata/template.yaml")
	handlers := map[string]apigw.Handler{}
	for _, fn := range tpl.Functions {
		handlers[fn.LogicalID] = (&recorder{}).handle
	}
	key, _ := keys(t)
	var logged strings.Builder
	srv, err := newServer(tpl, handlers, newAuthorizer(key), log.New(&logged, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, tc := range []struct{ query, want string }{
		{"token=s3cr3t-Value&lang=fr", "/activate?lang=fr&token=REDACTED"},
		{"token=a&token=b", "/activate?token=REDACTED&token=REDACTED"},
		{"lang=fr", "/activate?lang=fr"},
	} {
		logged.Reset()
		apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, ts.URL+"/activate?"+tc.query, nil, ""))
		line := logged.String()
		if !strings.Contains(line, "GET "+tc.want+" ") {
			t.Errorf("?%s logged %q, want the URI %s", tc.query, line, tc.want)
		}
		if strings.Contains(line, "s3cr3t") || strings.Contains(line, "token=a") || strings.Contains(line, "token=b") {
			t.Errorf("?%s: the log shows the token: %q", tc.query, line)
		}
	}
}

// TestFunctionDeadline ensures each handler gets the shorter of its
// function's Timeout and API Gateway's 30 s as its context's deadline, and
// that a handler still running at its deadline answers the gateway's 500,
// as a function that Lambda ends at its timeout does.
func TestFunctionDeadline(t *testing.T) {
	var left time.Duration
	deadline := func(ctx context.Context, _ events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
	}
	resp, _ := serveOne(t, deadline, nil)
	if resp.StatusCode != 200 || left <= 0 || left > time.Second {
		t.Errorf("ActivateFunction (Timeout 1): %d, deadline in %s, want 200 within 1 s", resp.StatusCode, left)
	}
	slow := func(ctx context.Context, _ events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		<-ctx.Done()
		return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
	}
	resp, body := serveOne(t, slow, nil)
	if resp.StatusCode != http.StatusInternalServerError || body != `{"message":"Internal Server Error"}` {
		t.Errorf("a handler past its timeout: %d %s, want the gateway's 500", resp.StatusCode, body)
	}

	tpl := mustParseTemplate(t, "testdata/template.yaml")
	if fn, _ := tpl.Function("GetUserFunction"); fn.Timeout != 40*time.Second {
		t.Fatalf("GetUserFunction's Timeout %s, want the Globals' 40 s", fn.Timeout)
	}
	if _, err := newServer(tpl, map[string]apigw.Handler{"GetUserFunction": deadline}, nil, log.New(io.Discard, "", 0)); err == nil {
		t.Fatal("a server without every handler was built")
	}
	handlers := map[string]apigw.Handler{}
	for _, fn := range tpl.Functions {
		handlers[fn.LogicalID] = deadline
	}
	srv, err := newServer(tpl, handlers, nil, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.deadlines["GetUserFunction"]; got != integrationTimeout {
		t.Errorf("GetUserFunction (Timeout 40) gets %s, want API Gateway's %s", got, integrationTimeout)
	}
}
