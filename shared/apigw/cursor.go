package apigw

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"licenseadmin/shared/licadmin"
)

// CursorKeys provides the secret that signs cursors.
type CursorKeys interface {
	CursorKey(ctx context.Context) ([]byte, error)
}

// Cursors makes list positions opaque and tamper-evident: a cursor is the
// position sealed with AES-256-GCM, the scope it was issued for (the caller
// and the list's filters) as associated data, so it can be neither read,
// forged, edited, nor replayed by another caller or with other filters.
type Cursors struct {
	Keys CursorKeys

	mu   sync.Mutex
	aead cipher.AEAD
}

func (c *Cursors) cipher(ctx context.Context) (cipher.AEAD, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aead == nil {
		k, err := c.Keys.CursorKey(ctx)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("cursor key: %w", err)
		}
		if c.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("cursor key: %w", err)
		}
	}
	return c.aead, nil
}

// Encode returns the cursor for position pos in scope, or nil for nil pos
// (the last page), which encodes as JSON null.
func (c *Cursors) Encode(ctx context.Context, scope string, pos []byte) (*string, error) {
	if pos == nil {
		return nil, nil
	}
	aead, err := c.cipher(ctx)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pos)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	s := base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, pos, []byte(scope)))
	return &s, nil
}

// Decode opens a cursor issued for scope and returns its position; an
// empty cursor is the first page. A cursor that fails to open answers
// EINVALID.
func (c *Cursors) Decode(ctx context.Context, scope, cursor string) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	bad := licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
	if len(cursor) > 2048 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor) // Strict: one string per cursor
	if err != nil {
		return nil, bad
	}
	aead, err := c.cipher(ctx)
	if err != nil {
		return nil, err
	}
	if len(b) < aead.NonceSize() {
		return nil, bad
	}
	pos, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(scope))
	if err != nil {
		return nil, bad
	}
	return pos, nil
}

// Page is the shape of every list response (docs/api.md, "Representations").
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

// OKEncoded returns a 200 response with a page whose items are JSON
// already, each the bytes json.Marshal gives for its value (the user
// search's, which its index holds encoded): the bytes json.Marshal gives
// for the page of those values, without json.Marshal's validating and
// compacting every json.RawMessage again, which costs as much as encoding
// the values.
func OKEncoded(p Page[json.RawMessage]) (*Response, error) {
	next, err := json.Marshal(p.NextCursor)
	if err != nil {
		return nil, fmt.Errorf("encode next cursor: %w", err)
	}
	n := len(`{"items":[],"nextCursor":}`) + len(next)
	for _, it := range p.Items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"items":[`...)
	for i, it := range p.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	b = append(b, `],"nextCursor":`...)
	b = append(b, next...)
	b = append(b, '}')
	return &Response{Status: http.StatusOK, Raw: b, Headers: map[string]string{"Content-Type": "application/json"}}, nil
}

// Limit reads a listing's optional limit query parameter: 0 when it is
// absent or empty (`?limit=&cursor=`, as every other empty parameter: the
// service's default), EINVALID out_of_range when it is not a whole number
// from 1. The upper bound is the service's to check.
func (r *Request) Limit() (int, error) {
	v := r.Query["limit"]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, licadmin.Invalid("limit", "out_of_range", "limit must be a whole number from 1")
	}
	return n, nil
}

// ListPage reads one page of a listing whose cursors belong to scope (the
// caller, and the filters a cursor must not outlive): it opens the
// request's cursor, lists from its position, and seals the next page's
// position for the same scope. An empty page's items are [], never null.
func ListPage[T any](ctx context.Context, c *Cursors, r *Request, scope string, list func(after []byte) ([]T, []byte, error)) (Page[T], error) {
	var page Page[T]
	after, err := c.Decode(ctx, scope, r.Query["cursor"])
	if err != nil {
		return page, err
	}
	items, next, err := list(after)
	if err != nil {
		return page, err
	}
	page.Items = items
	if page.Items == nil {
		page.Items = []T{}
	}
	if page.NextCursor, err = c.Encode(ctx, scope, next); err != nil {
		return page, err
	}
	return page, nil
}
