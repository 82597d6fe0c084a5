package stack

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"
)

// clockLeeway is the clock skew tolerated for nbf and iat.
const clockLeeway = 5 * time.Second

// authorizer checks bearer tokens the way API Gateway's JWT authorizer does
// for an HTTP API: identity source $request.header.Authorization (with or
// without the "Bearer " prefix), RS256 signature by a known key id, iss
// equal to the issuer, aud (or client_id when aud is absent) naming an
// accepted audience, exp in the future, nbf and iat not in the future, and
// the route's authorization scopes.
//
// A token whose signature it verified is remembered (verified), so that
// the next request with the same token skips the RSA verification, a
// quarter of the gateway's CPU per request (BenchmarkAPI); its
// claims are validated again on every request, so that it expires on time.
type authorizer struct {
	key       *rsa.PublicKey
	kid       string
	issuer    string
	audiences []string
	now       func() time.Time

	mu       sync.Mutex
	verified map[string]*verifiedToken
}

// verifiedToken is what a verified token's signature vouches for.
type verifiedToken struct {
	claims jwt.MapClaims
	jwt    *events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription
}

// maxVerified bounds the tokens remembered; past it, the map starts over.
// Tokens longer than maxRememberedToken are verified every time, so that
// the memory stays small whatever clients send.
const (
	maxVerified        = 1024
	maxRememberedToken = 8 << 10
)

func newAuthorizer(key *SigningKey) *authorizer {
	return &authorizer{
		key:       &key.private.PublicKey,
		kid:       key.kid,
		issuer:    Issuer,
		audiences: []string{Audience},
		now:       time.Now,
		verified:  map[string]*verifiedToken{},
	}
}

// authError is a refused request: the status and WWW-Authenticate header
// API Gateway answers with, and the body's message.
type authError struct {
	status      int
	description string
	scopes      []string
}

func (e *authError) Error() string { return e.description }

// header returns the WWW-Authenticate value API Gateway sends.
func (e *authError) header() string {
	if e.description == "" {
		return "Bearer"
	}
	code := "invalid_token"
	if e.status == http.StatusForbidden {
		code = "insufficient_scope"
	}
	return fmt.Sprintf(`Bearer scope=%q error=%q error_description=%q`, strings.Join(e.scopes, " "), code, e.description)
}

func (e *authError) message() string {
	if e.status == http.StatusForbidden {
		return "Forbidden"
	}
	return "Unauthorized"
}

func unauthorized(format string, args ...any) *authError {
	return &authError{status: http.StatusUnauthorized, description: fmt.Sprintf(format, args...)}
}

// authorize verifies the request's token and returns the authorizer context
// the function sees (claims as strings, scopes), or the error to answer.
// scopes are the route's AuthorizationScopes; the token needs one of them.
func (a *authorizer) authorize(h http.Header, scopes []string) (*events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription, *authError) {
	raw := strings.TrimSpace(h.Get("Authorization"))
	if raw == "" {
		return nil, &authError{status: http.StatusUnauthorized}
	}
	if len(raw) > 7 && strings.EqualFold(raw[:7], "bearer ") {
		raw = strings.TrimSpace(raw[7:])
	}
	v, aerr := a.verify(raw)
	if aerr != nil {
		return nil, aerr
	}
	if err := a.validate(v.claims); err != nil {
		return nil, err
	}
	granted := v.jwt.Scopes
	if len(scopes) > 0 && !slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(granted, s) }) {
		return nil, &authError{status: http.StatusForbidden, description: "the token does not have the required scopes", scopes: scopes}
	}
	return v.jwt, nil
}

// verify checks raw's signature by the issuer's key, or finds it verified
// before.
func (a *authorizer) verify(raw string) (*verifiedToken, *authError) {
	a.mu.Lock()
	v := a.verified[raw]
	a.mu.Unlock()
	if v != nil {
		return v, nil
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithJSONNumber(), jwt.WithoutClaimsValidation())
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != a.kid {
			return nil, errors.New("unknown kid")
		}
		return a.key, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, unauthorized("the token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, unauthorized("the token's signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, unauthorized("the token's kid is not one of the issuer's keys")
	case err != nil:
		return nil, unauthorized("the token is invalid")
	}
	v = &verifiedToken{claims: claims, jwt: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
		Claims: formatClaims(claims), Scopes: tokenScopes(claims)}}
	if len(raw) > maxRememberedToken {
		return v, nil
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[raw] = v
	a.mu.Unlock()
	return v, nil
}

// validate checks the registered claims.
func (a *authorizer) validate(c jwt.MapClaims) *authError {
	if iss, _ := c["iss"].(string); iss != a.issuer {
		return unauthorized("the token does not have a valid issuer")
	}
	aud := stringList(c["aud"])
	if _, hasAud := c["aud"]; !hasAud {
		aud = stringList(c["client_id"])
	}
	if !slices.ContainsFunc(aud, func(s string) bool { return slices.Contains(a.audiences, s) }) {
		return unauthorized("the token does not have a valid audience")
	}
	now := a.now()
	exp, ok := numericDate(c["exp"])
	switch {
	case !ok:
		return unauthorized("the token has no valid exp claim")
	case !now.Before(exp):
		return unauthorized("the token has expired")
	}
	if nbf, ok := numericDate(c["nbf"]); ok && nbf.After(now.Add(clockLeeway)) {
		return unauthorized("the token is not valid yet")
	}
	if iat, ok := numericDate(c["iat"]); ok && iat.After(now.Add(clockLeeway)) {
		return unauthorized("the token was issued in the future")
	}
	return nil
}

// numericDate reads a NumericDate claim decoded with UseNumber.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// stringList reads a claim that may be a string or an array of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// tokenScopes returns the token's OAuth scopes: the space-separated scope
// claim, or scp (a list or a string).
func tokenScopes(c jwt.MapClaims) []string {
	if s, ok := c["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch v := c["scp"].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		return stringList(v)
	}
	return nil
}

// formatClaims renders claims as the map[string]string of payload 2.0.
// API Gateway writes numbers as they appear in the token, booleans as
// true/false, and arrays as "[a b]" (space-separated in brackets); objects
// are written here as compact JSON.
func formatClaims(c jwt.MapClaims) map[string]string {
	out := make(map[string]string, len(c))
	for k, v := range c {
		out[k] = formatClaim(v)
	}
	return out
}

func formatClaim(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatClaim(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}
