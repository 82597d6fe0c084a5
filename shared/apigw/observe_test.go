package apigw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/licadmin"
)

type recordedRequest struct {
	op     string
	status int
}

type fakeMetrics struct{ got []recordedRequest }

func (f *fakeMetrics) Request(op string, status int, _ time.Duration) {
	f.got = append(f.got, recordedRequest{op, status})
}

func event(email, token string) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		RouteKey: "GET /v1/x",
		Headers:  map[string]string{"authorization": "Bearer " + token},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "rid-1",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/v1/x"},
		},
	}
	if email != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"email": email, "email_verified": "true"}},
		}
	}
	return ev
}

// TestRequestLogAndMetrics ensures each request writes one JSON log line
// with its operation, request id, status, outcome, latency and the
// caller's account once the store noted it — and never the token nor an
// email address, not even inside an internal error's text — and records
// one metric observation per request.
func TestRequestLogAndMetrics(t *testing.T) {
	const token = "eyJhbGciOi.secret-token.sig"
	tests := []struct {
		name        string
		email       string
		op          apigw.Operation
		status      int
		outcome     string
		accountID   string
		code, level string
	}{
		{"ok", "jane.doe@acme.test", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
			licadmin.NoteAccount(ctx, "acct-1")
			return apigw.OK(map[string]string{"email": r.Email})
		}, 200, apigw.OutcomeOK, "acct-1", "", "INFO"},
		{"rejected", "jane.doe@acme.test", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
			licadmin.NoteAccount(ctx, "acct-1")
			return nil, licadmin.Errorf(licadmin.EEMAILTAKEN, "a user with the email %s already exists", r.Email)
		}, 409, apigw.OutcomeRejected, "acct-1", licadmin.EEMAILTAKEN, "INFO"},
		{"failed", "jane.doe@acme.test", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
			return nil, errors.New(`load caller "jane.doe@acme.test": key EMAIL#jane.doe@acme.test: throttled`)
		}, 500, apigw.OutcomeFailed, "", licadmin.EINTERNAL, "ERROR"},
		{"no caller", "", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
			return apigw.OK(nil)
		}, 401, apigw.OutcomeRejected, "", licadmin.EUNAUTHORIZED, "INFO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			m := &fakeMetrics{}
			s := &apigw.Server{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: m}
			resp, err := s.Handle("Op", tt.op)(context.Background(), event(tt.email, token))
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("status %d, %v; want %d", resp.StatusCode, err, tt.status)
			}
			out := logs.String()
			if strings.Count(out, "\n") != 1 {
				t.Fatalf("want one log line, got %q", out)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(out), &line); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"msg": "request", "op": "Op", "requestId": "rid-1", "status": float64(tt.status), "outcome": tt.outcome, "level": tt.level}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v in %s", k, line[k], v, out)
				}
			}
			if _, ok := line["latencyMs"].(float64); !ok {
				t.Errorf("no latencyMs in %s", out)
			}
			if got, _ := line["accountId"].(string); got != tt.accountID {
				t.Errorf("accountId = %q, want %q", got, tt.accountID)
			}
			if got, _ := line["code"].(string); got != tt.code {
				t.Errorf("code = %q, want %q", got, tt.code)
			}
			for _, secret := range []string{token, "jane.doe@", "Bearer"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log line holds %q: %s", secret, out)
				}
			}
			if tt.level == "ERROR" && !strings.Contains(out, "j***@acme.test") {
				t.Errorf("the error text should keep the masked address: %s", out)
			}
			if len(m.got) != 1 || m.got[0] != (recordedRequest{"Op", tt.status}) {
				t.Errorf("metrics %+v, want one Op %d", m.got, tt.status)
			}
		})
	}
}

// TestRedactEmails ensures every address in a text is masked to its first
// character and domain.
func TestRedactEmails(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no address", "no address"},
		{`EMAIL#jane.doe+x@acme.test and bob@sub.example.co.uk`, `EMAIL#j***@acme.test and b***@sub.example.co.uk`},
		{"user@localhost stays: not a mail domain", "user@localhost stays: not a mail domain"},
	}
	for _, tt := range tests {
		if got := apigw.RedactEmails(tt.in); got != tt.want {
			t.Errorf("RedactEmails(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
