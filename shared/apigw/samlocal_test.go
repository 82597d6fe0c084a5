package apigw_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/localauth"
)

// TestSAMLocalIdentity ensures that, under sam local (Server.SAMLocal),
// a protected route takes its caller from a token the function verified
// itself, with the claims API Gateway would hand it (email_verified
// included, unchanged), answers the gateway's 401 to every token the
// gateway refuses, ignores an authorizer context that came with the event,
// and leaves public routes alone; and that without it (in AWS) an event
// without verified claims has no caller.
func TestSAMLocalIdentity(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"email": "Ann@Example.com", "email_verified": false, "sub": "local|ann", "iss": localauth.Issuer,
			"aud": localauth.Audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(k *rsa.PrivateKey, c jwt.MapClaims) string {
		s, err := localauth.Sign(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var caller string
	op := func(_ context.Context, r *apigw.Request) (*apigw.Response, error) {
		caller = r.Email
		return apigw.OK(map[string]string{"email": r.Email})
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	handlers := func(s *apigw.Server) (protected, public apigw.Handler) {
		return s.Handle("Protected", op), s.Handle("Public", op, apigw.Public())
	}
	samLocal := &apigw.Server{Logger: quiet, SAMLocal: localauth.New(&priv.PublicKey)}
	inAWS := &apigw.Server{Logger: quiet}
	event := func(auth string, ctxClaims map[string]string) events.APIGatewayV2HTTPRequest {
		ev := events.APIGatewayV2HTTPRequest{RouteKey: "GET /v1/x", Headers: map[string]string{}}
		ev.RequestContext.HTTP.Method = http.MethodGet
		if auth != "" {
			ev.Headers["authorization"] = auth
		}
		if ctxClaims != nil {
			ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: ctxClaims}}
		}
		return ev
	}
	protected, public := handlers(samLocal)
	valid := "Bearer " + sign(priv, claims(nil))
	for _, tc := range []struct {
		name    string
		h       apigw.Handler
		ev      events.APIGatewayV2HTTPRequest
		status  int
		caller  string
		wwwAuth string // part of WWW-Authenticate on a refusal
		gateway bool   // the answer is the gateway's {"message":...}
	}{
		{"valid token", protected, event(valid, nil), 200, "ann@example.com", "", false},
		{"valid token without Bearer", protected, event(strings.TrimPrefix(valid, "Bearer "), nil), 200, "ann@example.com", "", false},
		{"no token", protected, event("", nil), 401, "", "Bearer", true},
		{"forged context, no token", protected, event("", map[string]string{"email": "admin@victim.example"}), 401, "", "Bearer", true},
		{"forged context, valid token", protected, event(valid, map[string]string{"email": "admin@victim.example"}), 200, "ann@example.com", "", false},
		{"other key", protected, event("Bearer "+sign(other, claims(nil)), nil), 401, "", "kid", true},
		{"expired", protected, event("Bearer "+sign(priv, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), nil), 401, "", "expired", true},
		{"wrong issuer", protected, event("Bearer "+sign(priv, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" })), nil), 401, "", "issuer", true},
		{"wrong audience", protected, event("Bearer "+sign(priv, claims(func(c jwt.MapClaims) { c["aud"] = "other" })), nil), 401, "", "audience", true},
		{"public route, no token", public, event("", nil), 200, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller = "unset"
			resp, err := tc.h(context.Background(), tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, resp.Body, tc.status)
			}
			if tc.status == 200 && caller != tc.caller {
				t.Fatalf("caller %q, want %q", caller, tc.caller)
			}
			if tc.gateway {
				if resp.Body != `{"message":"Unauthorized"}` || !strings.Contains(resp.Headers["WWW-Authenticate"], tc.wwwAuth) {
					t.Fatalf("answer %s (WWW-Authenticate %q), want the gateway's 401 mentioning %q", resp.Body, resp.Headers["WWW-Authenticate"], tc.wwwAuth)
				}
				if caller != "unset" {
					t.Fatal("the operation ran")
				}
			}
		})
	}

	// The claims map the function reads is the one the gateway's authorizer
	// (the local API's) produces for the same token.
	want, aerr := localauth.New(&priv.PublicKey).Authorize(http.Header{"Authorization": {valid}}, nil)
	if aerr != nil {
		t.Fatal(aerr)
	}
	seen := apigw.SAMLocalClaims(samLocal, event(valid, nil))
	if len(seen) != len(want.Claims) || seen["email_verified"] != "false" || seen["email"] != "Ann@Example.com" {
		t.Fatalf("claims %v, want %v", seen, want.Claims)
	}
	for k, v := range want.Claims {
		if seen[k] != v {
			t.Errorf("claim %s = %q, want %q", k, seen[k], v)
		}
	}

	// In AWS, an event without verified claims has no caller, whatever
	// token it carries: the gateway verified nothing for this function.
	awsProtected, _ := handlers(inAWS)
	resp, err := awsProtected(context.Background(), event(valid, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Body, "unauthorized") {
		t.Fatalf("in AWS without claims: %d %s, want 401 unauthorized", resp.StatusCode, resp.Body)
	}
}
