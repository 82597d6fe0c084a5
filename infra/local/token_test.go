package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"licenseadmin/infra/stack"
	"licenseadmin/shared/apitest"
)

// newRoot returns a fresh repository root (a directory with a go.mod) and
// an env whose commands run there.
func newRoot(t *testing.T) (string, *env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	sub := apitest.NewRoot(t)
	var stdout, stderr bytes.Buffer
	return filepath.Dir(filepath.Dir(sub)), &env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Dir: sub}, &stdout, &stderr
}

// TestTokenCommand ensures `token EMAIL` prints one JSON object whose token
// the local API accepts, for the lower-cased email, valid one hour, signed
// with a key created once under .local/ with mode 0600.
func TestTokenCommand(t *testing.T) {
	root, e, stdout, stderr := newRoot(t)
	var kids []string
	for i := 0; i < 2; i++ {
		stdout.Reset()
		if code := dispatch(context.Background(), []string{"token", " Ann@Example.COM "}, e); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var out map[string]string
		dec := json.NewDecoder(stdout)
		if err := dec.Decode(&out); err != nil || len(out) != 1 || out["token"] == "" {
			t.Fatalf("output %q: want {\"token\": ...}", stdout)
		}
		if dec.More() {
			t.Error("more than one JSON value on stdout")
		}
		key, err := stack.LoadOrCreateKey(root)
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, key.KID())
		c, err := key.Verify(out["token"])
		if err != nil {
			t.Fatal(err)
		}
		if c["email"] != "ann@example.com" || c["iss"] != stack.Issuer || c["aud"] != stack.Audience || c["sub"] == "" {
			t.Errorf("claims = %v", c)
		}
		iat, _ := strconv.ParseInt(c["iat"], 10, 64)
		exp, _ := strconv.ParseInt(c["exp"], 10, 64)
		if exp-iat != int64(time.Hour/time.Second) || time.Since(time.Unix(iat, 0)) > time.Minute {
			t.Errorf("iat %d exp %d: want now and now+1h", iat, exp)
		}
	}
	if kids[0] != kids[1] {
		t.Error("the second token was signed with another key")
	}
	fi, err := os.Stat(filepath.Join(root, ".local", "jwt-signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestTokenCommandUsage ensures a missing or malformed email is a usage
// error (exit 2) with a message, and nothing on stdout.
func TestTokenCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no email", []string{"token"}, "missing EMAIL"},
		{"two emails", []string{"token", "a@b.c", "d@e.f"}, `unexpected argument "d@e.f"`},
		{"not an email", []string{"token", "ann"}, "not an email address"},
		{"unknown flag", []string{"token", "-x", "a@b.c"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e, stdout, stderr := newRoot(t)
			if code := dispatch(context.Background(), tt.args, e); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
				t.Errorf("stderr %q stdout %q, want %q on stderr only", stderr, stdout, tt.want)
			}
		})
	}
}

// TestKeyCreatedOnce ensures concurrent first uses agree on one key.
func TestKeyCreatedOnce(t *testing.T) {
	root, _, _, _ := newRoot(t)
	kids := make(chan string, 4)
	for i := 0; i < cap(kids); i++ {
		go func() {
			k, err := stack.LoadOrCreateKey(root)
			if err != nil {
				kids <- "error: " + err.Error()
				return
			}
			kids <- k.KID()
		}()
	}
	first := <-kids
	for i := 1; i < cap(kids); i++ {
		if k := <-kids; k != first {
			t.Errorf("kid %s, want %s", k, first)
		}
	}
}
