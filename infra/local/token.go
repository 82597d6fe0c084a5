package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"licenseadmin/infra/dynamolocal"
	"licenseadmin/shared/localauth"
)

// tokenTTL is how long a local token is valid.
const tokenTTL = time.Hour

// tokenCmd prints {"token": "..."}, a bearer token for the email argument.
func tokenCmd(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "token")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return usageError{"missing EMAIL, the address to sign a token for"}
	case fs.NArg() > 1:
		return usageError{fmt.Sprintf("unexpected argument %q: token takes one EMAIL", fs.Arg(1))}
	}
	email := strings.ToLower(strings.TrimSpace(fs.Arg(0)))
	if local, domain, ok := strings.Cut(email, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(email, " \t<>") {
		return usageError{fmt.Sprintf("%q is not an email address", fs.Arg(0))}
	}
	root, err := dynamolocal.ModuleRoot(e.dir)
	if err != nil {
		return err
	}
	key, err := loadOrCreateKey(root)
	if err != nil {
		return err
	}
	tok, err := issueToken(key, email, time.Now())
	if err != nil {
		return err
	}
	return json.NewEncoder(e.stdout).Encode(struct {
		Token string `json:"token"`
	}{tok})
}

// issueToken returns an RS256 JWT for email, shaped like the portal's:
// email, sub, iss, aud, iat and exp (now + tokenTTL).
func issueToken(key *signingKey, email string, now time.Time) (string, error) {
	email = strings.ToLower(email)
	sum := sha256.Sum256([]byte(email))
	claims := jwt.MapClaims{
		"email": email,
		"sub":   "local|" + hex.EncodeToString(sum[:8]),
		"iss":   Issuer,
		"aud":   Audience,
		"iat":   now.Unix(),
		"exp":   now.Add(tokenTTL).Unix(),
	}
	return localauth.Sign(key.private, claims)
}
