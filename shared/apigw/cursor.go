package apigw

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"

	"licenseadmin/shared/licadmin"
)

// CursorKeys provides the secret that signs cursors.
type CursorKeys interface {
	CursorKey(ctx context.Context) ([]byte, error)
}

// Cursors makes list positions opaque and tamper-evident: a cursor is the
// position, base64url-encoded, with an HMAC over the position and the scope
// it was issued for (the caller and the list's filters), so it cannot be
// forged, edited, or replayed by another caller or with other filters.
type Cursors struct {
	Keys CursorKeys

	mu  sync.Mutex
	key []byte
}

func (c *Cursors) secret(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == nil {
		k, err := c.Keys.CursorKey(ctx)
		if err != nil {
			return nil, err
		}
		c.key = k
	}
	return c.key, nil
}

func sign(key []byte, scope string, pos []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write(pos)
	return m.Sum(nil)[:16]
}

// Encode returns the cursor for position pos in scope, or nil for nil pos
// (the last page), which encodes as JSON null.
func (c *Cursors) Encode(ctx context.Context, scope string, pos []byte) (*string, error) {
	if pos == nil {
		return nil, nil
	}
	key, err := c.secret(ctx)
	if err != nil {
		return nil, err
	}
	s := base64.RawURLEncoding.EncodeToString(pos) + "." + base64.RawURLEncoding.EncodeToString(sign(key, scope, pos))
	return &s, nil
}

// Decode verifies a cursor issued for scope and returns its position; an
// empty cursor is the first page. A cursor that fails verification answers
// EINVALID.
func (c *Cursors) Decode(ctx context.Context, scope, cursor string) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	bad := licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
	p, m, ok := strings.Cut(cursor, ".")
	if !ok || len(cursor) > 2048 {
		return nil, bad
	}
	pos, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(m)
	if err1 != nil || err2 != nil {
		return nil, bad
	}
	key, err := c.secret(ctx)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(mac, sign(key, scope, pos)) {
		return nil, bad
	}
	return pos, nil
}

// Page is the shape of every list response (SPEC "Representations").
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}
