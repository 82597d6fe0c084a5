// Package localauth checks bearer tokens the way API Gateway's HTTP API
// JWT authorizer does, for the two places where no gateway does it on this
// machine: the local API of the local stack, and functions that SAM CLI
// runs (sam local), since SAM does not emulate JWT authorizers. Both accept
// the tokens of the local issuer only (Issuer, Audience), signed with the
// local stack's key; a deployed function never uses this package (FromEnv).
package localauth

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"
)

// The local stack's token issuer and audience. The local authorizer
// accepts only tokens with exactly this iss and this aud, as the API
// Gateway JWT authorizer does with the deployed ones.
const (
	Issuer   = "https://license-admin.local/"
	Audience = "license-admin"
)

// Environment variables of a function that SAM CLI runs: SAM CLI sets
// EnvSAMLocal to "true" in every container it starts; EnvPublicKey holds
// the local stack's public key (PEM), written into the env file that
// sam local is given. Neither is set in AWS (a template test holds it).
const (
	EnvSAMLocal  = "AWS_SAM_LOCAL"
	EnvPublicKey = "LOCAL_JWT_PUBLIC_KEY"
)

// ClockLeeway is the clock skew tolerated for nbf and iat.
const ClockLeeway = 5 * time.Second

// Authorizer checks bearer tokens the way API Gateway's JWT authorizer does
// for an HTTP API: identity source $request.header.Authorization (with or
// without the "Bearer " prefix), RS256 signature by a known key id, iss
// equal to the issuer, aud (or client_id when aud is absent) naming an
// accepted audience, exp in the future, nbf and iat not in the future, and
// the route's authorization scopes. What it returns is what the gateway
// hands the function: the claims as strings, and the scopes.
//
// A token whose signature it verified is remembered, so that the next
// request with the same token skips the RSA verification, a quarter of the
// local API's CPU per request (BenchmarkAPI); its claims are validated
// again on every request, so that it expires on time.
type Authorizer struct {
	key       *rsa.PublicKey
	kid       string
	issuer    string
	audiences []string
	// Now is the clock that exp, nbf and iat are checked against.
	Now func() time.Time

	mu       sync.Mutex
	verified map[string]*verifiedToken
}

// verifiedToken is what a verified token's signature vouches for.
type verifiedToken struct {
	claims jwt.MapClaims
	jwt    *events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription
}

// MaxVerified bounds the tokens remembered; past it, the map starts over.
// Tokens longer than MaxRememberedToken are verified every time, so that
// the memory stays small whatever clients send.
const (
	MaxVerified        = 1024
	MaxRememberedToken = 8 << 10
)

// New returns the authorizer of the local issuer for tokens signed with
// the private half of pub, whose key id is pub's thumbprint.
func New(pub *rsa.PublicKey) *Authorizer {
	return &Authorizer{
		key:       pub,
		kid:       Thumbprint(pub),
		issuer:    Issuer,
		audiences: []string{Audience},
		Now:       time.Now,
		verified:  map[string]*verifiedToken{},
	}
}

// FromEnv returns the authorizer a function run by SAM CLI checks tokens
// with, or nil, the case in AWS, where API Gateway has checked them. It
// needs both variables: EnvSAMLocal "true" (set by SAM CLI) and
// EnvPublicKey; either alone is nil, and a key that does not parse is an
// error, so that a broken env file fails loudly instead of answering 401.
func FromEnv(getenv func(string) string) (*Authorizer, error) {
	pemKey := getenv(EnvPublicKey)
	if getenv(EnvSAMLocal) != "true" || pemKey == "" {
		return nil, nil
	}
	pub, err := ParsePublicKey([]byte(pemKey))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvPublicKey, err)
	}
	return New(pub), nil
}

// ParsePublicKey reads an RSA public key in PEM ("PUBLIC KEY", PKIX).
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA public key")
	}
	return pub, nil
}

// PublicKeyPEM encodes pub for ParsePublicKey.
func PublicKeyPEM(pub *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of an RSA public key, the
// key id that local tokens carry in their kid header.
func Thumbprint(pub *rsa.PublicKey) string {
	b64 := base64.RawURLEncoding.EncodeToString
	jwk, _ := json.Marshal(struct {
		E   string `json:"e"`
		Kty string `json:"kty"`
		N   string `json:"n"`
	}{b64(big.NewInt(int64(pub.E)).Bytes()), "RSA", b64(pub.N.Bytes())})
	sum := sha256.Sum256(jwk)
	return b64(sum[:])
}

// Sign returns the RS256 JWT of claims signed with priv, with the kid
// header that New's authorizer of priv's public key expects.
func Sign(priv *rsa.PrivateKey, claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = Thumbprint(&priv.PublicKey)
	s, err := tok.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Error is a refused request: the status and WWW-Authenticate header API
// Gateway answers with, and the body's message.
type Error struct {
	Status      int
	Description string
	Scopes      []string
}

func (e *Error) Error() string { return e.Description }

// Header returns the WWW-Authenticate value API Gateway sends.
func (e *Error) Header() string {
	if e.Description == "" {
		return "Bearer"
	}
	code := "invalid_token"
	if e.Status == http.StatusForbidden {
		code = "insufficient_scope"
	}
	return fmt.Sprintf(`Bearer scope=%q error=%q error_description=%q`, strings.Join(e.Scopes, " "), code, e.Description)
}

// Message is the "message" of API Gateway's JSON body.
func (e *Error) Message() string {
	if e.Status == http.StatusForbidden {
		return "Forbidden"
	}
	return "Unauthorized"
}

func unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Description: fmt.Sprintf(format, args...)}
}

// Authorize verifies the request's token and returns the authorizer context
// the function sees (claims as strings, scopes), or the error to answer.
// scopes are the route's AuthorizationScopes; the token needs one of them.
func (a *Authorizer) Authorize(h http.Header, scopes []string) (*events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription, *Error) {
	raw := strings.TrimSpace(h.Get("Authorization"))
	if raw == "" {
		return nil, &Error{Status: http.StatusUnauthorized}
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
		return nil, &Error{Status: http.StatusForbidden, Description: "the token does not have the required scopes", Scopes: scopes}
	}
	return v.jwt, nil
}

// Remembered returns how many verified tokens are remembered.
func (a *Authorizer) Remembered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.verified)
}

// verify checks raw's signature by the issuer's key, or finds it verified
// before.
func (a *Authorizer) verify(raw string) (*verifiedToken, *Error) {
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
	if len(raw) > MaxRememberedToken {
		return v, nil
	}
	a.mu.Lock()
	if len(a.verified) >= MaxVerified {
		clear(a.verified)
	}
	a.verified[raw] = v
	a.mu.Unlock()
	return v, nil
}

// validate checks the registered claims.
func (a *Authorizer) validate(c jwt.MapClaims) *Error {
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
	now := a.Now()
	exp, ok := numericDate(c["exp"])
	switch {
	case !ok:
		return unauthorized("the token has no valid exp claim")
	case !now.Before(exp):
		return unauthorized("the token has expired")
	}
	if nbf, ok := numericDate(c["nbf"]); ok && nbf.After(now.Add(ClockLeeway)) {
		return unauthorized("the token is not valid yet")
	}
	if iat, ok := numericDate(c["iat"]); ok && iat.After(now.Add(ClockLeeway)) {
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
