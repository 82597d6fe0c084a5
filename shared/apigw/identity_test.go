package apigw_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/apigw"
)

// TestEmailVerified ensures identity comes from an email claim only when
// the token says it was verified (a boolean, which API Gateway writes as
// "true", or the string "true"); without it the request answers 403
// email_unverified before any operation runs, unless the deployment trusts
// unverified addresses. Public routes read no identity at all.
func TestEmailVerified(t *testing.T) {
	tests := []struct {
		name     string
		claims   map[string]string
		trust    bool
		public   bool
		status   int
		code     string
		wantCall string
	}{
		{name: "verified", claims: map[string]string{"email": "Ann@Example.COM", "email_verified": "true"}, status: 200, wantCall: "ann@example.com"},
		{name: "verified, other case", claims: map[string]string{"email": "ann@example.com", "email_verified": "True"}, status: 200, wantCall: "ann@example.com"},
		{name: "unicode domain is canonical", claims: map[string]string{"email": "ann@EXÄMPLE.com", "email_verified": "true"}, status: 200, wantCall: "ann@xn--exmple-cua.com"},
		{name: "no claim", claims: map[string]string{"email": "ann@example.com"}, status: 403, code: "email_unverified"},
		{name: "false", claims: map[string]string{"email": "ann@example.com", "email_verified": "false"}, status: 403, code: "email_unverified"},
		{name: "garbage", claims: map[string]string{"email": "ann@example.com", "email_verified": "yes"}, status: 403, code: "email_unverified"},
		{name: "trusted without claim", claims: map[string]string{"email": "ann@example.com"}, trust: true, status: 200, wantCall: "ann@example.com"},
		{name: "trusted but no email", claims: map[string]string{"email_verified": "true"}, trust: true, status: 401, code: "unauthorized"},
		{name: "no token", status: 401, code: "unauthorized"},
		{name: "public route", public: true, status: 200, wantCall: ""},
		{name: "public route ignores claims", claims: map[string]string{"email": "ann@example.com"}, public: true, status: 200, wantCall: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &apigw.Server{Logger: slog.New(slog.DiscardHandler), TrustUnverifiedEmail: tt.trust}
			var called *string
			op := func(_ context.Context, r *apigw.Request) (*apigw.Response, error) {
				called = &r.Email
				return apigw.OK(map[string]string{})
			}
			var opts []apigw.Option
			if tt.public {
				opts = append(opts, apigw.Public())
			}
			ev := events.APIGatewayV2HTTPRequest{RouteKey: "GET /v1/x"}
			ev.RequestContext.HTTP.Method = "GET"
			if tt.claims != nil {
				ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
					JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: tt.claims},
				}
			}
			resp, err := s.Handle("X", op, opts...)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
			if tt.code != "" {
				var p apigw.Problem
				if err := json.Unmarshal([]byte(resp.Body), &p); err != nil || p.Code != tt.code {
					t.Fatalf("body %s, want code %s", resp.Body, tt.code)
				}
				if called != nil {
					t.Fatal("the operation ran for a refused caller")
				}
				return
			}
			if called == nil || *called != tt.wantCall {
				t.Fatalf("operation saw caller %v, want %q", called, tt.wantCall)
			}
		})
	}
}
