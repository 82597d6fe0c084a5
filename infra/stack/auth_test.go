package stack

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"licenseadmin/shared/apitest"
)

// timeNow is the clock of the auth tests (the authorizer uses time.Now).
func timeNow() time.Time { return time.Now() }

// TestAuthRejections ensures a protected route answers 401 Unauthorized
// with WWW-Authenticate, without invoking its function, for every token the
// API Gateway JWT authorizer refuses.
func TestAuthRejections(t *testing.T) {
	api := newTestAPI(t)
	key, other := keys(t)
	now := timeNow()
	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := validClaims(now)
		change(c)
		return c
	}
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims(now)).SignedString([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	forged := mustToken(t, other, validClaims(now))
	otherKid := func() string { k := *other; k.kid = key.kid; return mustToken(t, &k, validClaims(now)) }()

	tests := []struct {
		name       string
		authHeader string
		wantDesc   string // in WWW-Authenticate; "" for a bare "Bearer"
	}{
		{"no token", "", ""},
		{"garbage", "Bearer not.a.jwt", "malformed"},
		{"HS256", "Bearer " + hs256, "signature"},
		{"unknown key id", "Bearer " + forged, "kid"},
		{"bad signature", "Bearer " + otherKid, "signature is invalid"},
		{"tampered payload", "Bearer " + tamper(mustToken(t, key, validClaims(now))), "signature is invalid"},
		{"wrong iss", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" })), "issuer"},
		{"no iss", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { delete(c, "iss") })), "issuer"},
		{"wrong aud", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), "audience"},
		{"aud list without ours", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} })), "audience"},
		{"client_id ignored when aud present", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["aud"] = "x"; c["client_id"] = Audience })), "audience"},
		{"expired", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })), "expired"},
		{"no exp", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { delete(c, "exp") })), "exp"},
		{"nbf in the future", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), "not valid yet"},
		{"iat in the future", "Bearer " + mustToken(t, key, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })), "future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := apitest.HTTPRequest(t, http.MethodGet, api.URL+"/v1/users/me", nil, "")
			if tt.authHeader != "" {
				req.Header.Set("Authorization", tt.authHeader)
			}
			before := len(api.funcs["MeFunction"].events)
			resp, body := apitest.HTTPDo(t, req)
			if resp.StatusCode != http.StatusUnauthorized || body != `{"message":"Unauthorized"}` {
				t.Errorf("got %d %s, want 401 {\"message\":\"Unauthorized\"}", resp.StatusCode, body)
			}
			www := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(www, "Bearer") || !strings.Contains(www, tt.wantDesc) {
				t.Errorf("WWW-Authenticate = %q, want Bearer … %q", www, tt.wantDesc)
			}
			if tt.wantDesc != "" && !strings.Contains(www, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q, want error=\"invalid_token\"", www)
			}
			if after := len(api.funcs["MeFunction"].events); after != before {
				t.Error("the function was invoked")
			}
		})
	}
}

// tamper changes the token's payload while keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	claims := jwt.MapClaims{"email": "admin@victim.example", "iss": Issuer, "aud": Audience, "exp": time.Now().Add(time.Hour).Unix()}
	b, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SigningString()
	return parts[0] + "." + strings.Split(b, ".")[1] + "." + parts[2]
}

// TestAuthAccepts ensures good tokens pass: with or without the Bearer
// prefix, aud as a list, client_id standing in for a missing aud, a
// not-before just reached, and a public route with no token at all.
func TestAuthAccepts(t *testing.T) {
	api := newTestAPI(t)
	key, _ := keys(t)
	now := timeNow()
	with := func(change func(jwt.MapClaims)) string {
		c := validClaims(now)
		change(c)
		return mustToken(t, key, c)
	}
	tests := []struct {
		name, path, authHeader string
	}{
		{"bearer", "/v1/users/me", "Bearer " + mustToken(t, key, validClaims(now))},
		{"lower-case bearer", "/v1/users/me", "bearer " + mustToken(t, key, validClaims(now))},
		{"no prefix", "/v1/users/me", mustToken(t, key, validClaims(now))},
		{"aud list", "/v1/users/me", "Bearer " + with(func(c jwt.MapClaims) { c["aud"] = []string{"x", Audience} })},
		{"client_id", "/v1/users/me", "Bearer " + with(func(c jwt.MapClaims) { delete(c, "aud"); c["client_id"] = Audience })},
		{"nbf now", "/v1/users/me", "Bearer " + with(func(c jwt.MapClaims) { c["nbf"] = now.Unix() })},
		{"public route, no token", "/activate", ""},
		{"public route, bad token", "/activate", "Bearer junk"},
		{"scoped route with scope", "/admin", "Bearer " + with(func(c jwt.MapClaims) { c["scope"] = "read admin" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := apitest.HTTPRequest(t, http.MethodGet, api.URL+tt.path, nil, "")
			if tt.authHeader != "" {
				req.Header.Set("Authorization", tt.authHeader)
			}
			if resp, body := apitest.HTTPDo(t, req); resp.StatusCode != http.StatusOK {
				t.Errorf("got %d %s (%s), want 200", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("public route gets no authorizer context", func(t *testing.T) {
		apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api.URL+"/activate", nil, mustToken(t, key, validClaims(now))))
		if ev := api.funcs["ActivateFunction"].last(t); ev.RequestContext.Authorizer != nil {
			t.Errorf("authorizer = %+v, want nil", ev.RequestContext.Authorizer)
		}
	})
}

// TestAuthScopes ensures a route with AuthorizationScopes refuses a valid
// token lacking them with 403, as API Gateway does.
func TestAuthScopes(t *testing.T) {
	api := newTestAPI(t)
	key, _ := keys(t)
	c := validClaims(timeNow())
	c["scope"] = "read write"
	resp, body := apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api.URL+"/admin", nil, mustToken(t, key, c)))
	if resp.StatusCode != http.StatusForbidden || body != `{"message":"Forbidden"}` {
		t.Errorf("got %d %s, want 403 Forbidden", resp.StatusCode, body)
	}
	if www := resp.Header.Get("WWW-Authenticate"); !strings.Contains(www, `error="insufficient_scope"`) || !strings.Contains(www, `scope="admin"`) {
		t.Errorf("WWW-Authenticate = %q", www)
	}
}

// TestFormatClaims ensures claims reach the function as API Gateway writes
// them: strings as is, numbers as in the token, arrays as "[a b]".
func TestFormatClaims(t *testing.T) {
	api := newTestAPI(t)
	key, _ := keys(t)
	c := validClaims(timeNow())
	c["exp"] = int64(4102444800)
	c["groups"] = []string{"admins", "users"}
	c["email_verified"] = true
	c["ratio"] = 0.5
	c["address"] = map[string]any{"country": "FR"}
	c["scope"] = "openid email"
	apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api.URL+"/v1/users/me", nil, mustToken(t, key, c)))
	jwtCtx := api.funcs["MeFunction"].last(t).RequestContext.Authorizer.JWT
	want := map[string]string{
		"email":          "ann@example.com",
		"exp":            "4102444800",
		"groups":         "[admins users]",
		"email_verified": "true",
		"ratio":          "0.5",
		"address":        `{"country":"FR"}`,
		"scope":          "openid email",
	}
	for k, v := range want {
		if got := jwtCtx.Claims[k]; got != v {
			t.Errorf("claim %s = %q, want %q", k, got, v)
		}
	}
	if strings.Join(jwtCtx.Scopes, ",") != "openid,email" {
		t.Errorf("scopes = %v, want [openid email]", jwtCtx.Scopes)
	}
}
