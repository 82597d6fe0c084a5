package stack

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"licenseadmin/shared/localauth"
)

// The local stack's token issuer and audience (localauth holds them, for
// the local API and for functions run by sam local).
const (
	Issuer   = localauth.Issuer
	Audience = localauth.Audience
)

// keyPath is where the local signing key lives, under the repository root;
// /.local/ is gitignored.
const keyPath = ".local/jwt-signing-key.pem"

// SigningKey is the local stack's RSA key and its key id (the RFC 7638
// thumbprint of the public key), which tokens carry in their kid header.
type SigningKey struct {
	private *rsa.PrivateKey
	kid     string
}

// LoadOrCreateKey reads the signing key under root, creating it (RSA 2048,
// mode 0600) on first use. Two processes creating it at once agree on one
// key: the file is written aside and linked into place only if absent.
func LoadOrCreateKey(root string) (*SigningKey, error) {
	path := filepath.Join(root, keyPath)
	if k, err := readKey(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jwt-signing-key-*")
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	return readKey(path)
}

func readKey(path string) (*SigningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("read signing key %s: no PEM block (delete the file to get a new key)", path)
	}
	var priv *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("read signing key %s: %w", path, err)
		}
		var ok bool
		if priv, ok = k.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("read signing key %s: not an RSA key (delete the file to get a new key)", path)
		}
	case "RSA PRIVATE KEY":
		if priv, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("read signing key %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("read signing key %s: unexpected PEM type %q", path, block.Type)
	}
	return &SigningKey{private: priv, kid: localauth.Thumbprint(&priv.PublicKey)}, nil
}

// newAuthorizer returns the local API's authorizer for tokens signed with key.
func newAuthorizer(key *SigningKey) *localauth.Authorizer {
	return localauth.New(&key.private.PublicKey)
}

// tokenTTL is how long a local token is valid.
const tokenTTL = time.Hour

// IssueToken returns an RS256 JWT for email, shaped like the portal's:
// email, sub, iss, aud, iat and exp (now + tokenTTL).
func IssueToken(key *SigningKey, email string, now time.Time) (string, error) {
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

// KID is the key's id, the kid of the tokens it signs.
func (k *SigningKey) KID() string { return k.kid }

// Verify returns the claims of a bearer token as the local API's
// authorizer reads them, or why it refuses the token.
func (k *SigningKey) Verify(token string) (map[string]string, error) {
	jwt, aerr := newAuthorizer(k).Authorize(http.Header{"Authorization": {"Bearer " + token}}, nil)
	if aerr != nil {
		return nil, fmt.Errorf("the local authorizer refuses the token: %s", aerr.Message())
	}
	return jwt.Claims, nil
}
