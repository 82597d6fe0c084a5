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
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/localauth"
)

// tokenTTL is how long a local token is valid.
const tokenTTL = time.Hour

// tokenCmd prints {"token": "..."}, a bearer token for the email argument.
// With --unverified (before or after EMAIL) the token has no
// email_verified claim, as from an identity provider that did not verify
// the address: the API answers it 403 email_unverified unless the stack
// trusts unverified addresses (TRUST_UNVERIFIED_EMAIL=true).
func tokenCmd(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "token")
	unverified := fs.Bool("unverified", false, "leave the email_verified claim out")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	arg := fs.Arg(0)
	if fs.NArg() > 0 {
		// Flags may follow EMAIL too.
		if err := parseFlags(fs, fs.Args()[1:]); err != nil {
			return err
		}
	}
	switch {
	case arg == "":
		return usageError{"missing EMAIL, the address to sign a token for"}
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("unexpected argument %q: token takes one EMAIL", fs.Arg(0))}
	}
	email := licadmin.NormalizeEmail(arg)
	if local, domain, ok := strings.Cut(email, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(email, " \t<>") {
		return usageError{fmt.Sprintf("%q is not an email address", arg)}
	}
	root, err := dynamolocal.ModuleRoot(e.dir)
	if err != nil {
		return err
	}
	key, err := loadOrCreateKey(root)
	if err != nil {
		return err
	}
	tok, err := issueToken(key, email, !*unverified, time.Now())
	if err != nil {
		return err
	}
	return json.NewEncoder(e.stdout).Encode(struct {
		Token string `json:"token"`
	}{tok})
}

// issueToken returns an RS256 JWT for email, shaped like the portal's:
// email, email_verified (when verified), sub, iss, aud, iat and exp (now +
// tokenTTL).
func issueToken(key *signingKey, email string, verified bool, now time.Time) (string, error) {
	email = licadmin.NormalizeEmail(email)
	sum := sha256.Sum256([]byte(email))
	claims := jwt.MapClaims{
		"email": email,
		"sub":   "local|" + hex.EncodeToString(sum[:8]),
		"iss":   Issuer,
		"aud":   Audience,
		"iat":   now.Unix(),
		"exp":   now.Add(tokenTTL).Unix(),
	}
	if verified {
		claims["email_verified"] = true
	}
	return localauth.Sign(key.private, claims)
}
