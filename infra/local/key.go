package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

// signingKey is the local stack's RSA key and its key id (the RFC 7638
// thumbprint of the public key), which tokens carry in their kid header.
type signingKey struct {
	private *rsa.PrivateKey
	kid     string
}

// loadOrCreateKey reads the signing key under root, creating it (RSA 2048,
// mode 0600) on first use. Two processes creating it at once agree on one
// key: the file is written aside and linked into place only if absent.
func loadOrCreateKey(root string) (*signingKey, error) {
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

func readKey(path string) (*signingKey, error) {
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
	return &signingKey{private: priv, kid: localauth.Thumbprint(&priv.PublicKey)}, nil
}

// newAuthorizer returns the local API's authorizer for tokens signed with key.
func newAuthorizer(key *signingKey) *localauth.Authorizer {
	return localauth.New(&key.private.PublicKey)
}
