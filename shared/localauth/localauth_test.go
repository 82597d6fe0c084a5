package localauth

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func key(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func token(t *testing.T, priv *rsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	s, err := Sign(priv, claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"email": "ann@example.com", "iss": Issuer, "aud": Audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// TestFromEnv ensures the authorizer of a function switches on only with
// both variables: SAM CLI's AWS_SAM_LOCAL=true and the local public key.
func TestFromEnv(t *testing.T) {
	priv := key(t)
	pemKey, err := PublicKeyPEM(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		samLocal string
		key      string
		want     string // "on", "off" or "error"
	}{
		{"sam local with the key", "true", string(pemKey), "on"},
		{"in AWS: neither", "", "", "off"},
		{"the key without sam local", "", string(pemKey), "off"},
		{"the key with AWS_SAM_LOCAL not true", "1", string(pemKey), "off"},
		{"sam local without the key", "true", "", "off"},
		{"sam local with a broken key", "true", "not a key", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{EnvSAMLocal: tc.samLocal, EnvPublicKey: tc.key}
			a, err := FromEnv(func(k string) string { return env[k] })
			got := "off"
			switch {
			case err != nil:
				got = "error"
			case a != nil:
				got = "on"
			}
			if got != tc.want {
				t.Fatalf("FromEnv: %s (err %v), want %s", got, err, tc.want)
			}
			if a != nil {
				h := http.Header{"Authorization": {"Bearer " + token(t, priv, claims(time.Now()))}}
				if _, aerr := a.Authorize(h, nil); aerr != nil {
					t.Fatalf("a token of the key refused: %v", aerr)
				}
			}
		})
	}
}

// TestAuthRemembersSignatureNotValidity ensures a token verified once is
// still validated on every request: it is refused once it expires, a token
// that differs in one byte is verified afresh, and a very long token is not
// remembered.
func TestAuthRemembersSignatureNotValidity(t *testing.T) {
	priv := key(t)
	a := New(&priv.PublicKey)
	now := time.Now()
	a.Now = func() time.Time { return now }
	c := claims(now)
	c["exp"] = now.Add(time.Minute).Unix()
	tok := token(t, priv, c)
	h := http.Header{"Authorization": {"Bearer " + tok}}
	for range 2 {
		if _, err := a.Authorize(h, nil); err != nil {
			t.Fatalf("valid token refused: %s", err.Description)
		}
	}
	if a.Remembered() != 1 {
		t.Fatalf("%d tokens remembered, want 1", a.Remembered())
	}
	now = now.Add(2 * time.Minute)
	if _, err := a.Authorize(h, nil); err == nil || !strings.Contains(err.Description, "expired") {
		t.Fatalf("an expired, remembered token: %v, want refused as expired", err)
	}
	now = now.Add(-2 * time.Minute)
	parts := strings.Split(tok, ".")
	forged := claims(now)
	forged["email"] = "admin@victim.example"
	other := strings.Split(token(t, priv, forged), ".")
	tampered := parts[0] + "." + other[1] + "." + parts[2]
	if _, err := a.Authorize(http.Header{"Authorization": {"Bearer " + tampered}}, nil); err == nil || !strings.Contains(err.Description, "signature") {
		t.Fatalf("a tampered copy of a remembered token: %v, want its signature refused", err)
	}
	big := claims(now)
	big["pad"] = strings.Repeat("x", MaxRememberedToken)
	if _, err := a.Authorize(http.Header{"Authorization": {"Bearer " + token(t, priv, big)}}, nil); err != nil {
		t.Fatalf("a valid long token refused: %s", err.Description)
	}
	if a.Remembered() != 1 {
		t.Fatalf("%d tokens remembered after a token over %d bytes, want it not remembered", a.Remembered(), MaxRememberedToken)
	}
}
