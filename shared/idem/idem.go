// Package idem carries an Idempotency-Key through a request (docs/api.md, rule 9):
// the HTTP layer opens a Pending record, the store writes it in the same
// transaction as the change it guards, so a retry can never apply the change
// twice, and a replay returns the first response byte for byte.
package idem

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// TTL is how long a key is remembered (rule 9 of docs/api.md: 24 h).
const TTL = 24 * time.Hour

// ErrReplay is returned by a store when the key's record already exists,
// written by a concurrent request with the same key: the caller must read the
// record and replay it instead of applying anything.
var ErrReplay = errors.New("idempotency record already exists")

// Record is a remembered response.
type Record struct {
	// Scope and Key identify the record: the caller's email and the header.
	Scope string
	Key   string
	// Hash fingerprints the request (method, route, path, body); the same key
	// with another hash is refused.
	Hash        string
	Status      int
	ContentType string
	// Headers are the response's other headers (Location, ETag), replayed
	// with the body; Content-Type is kept in ContentType.
	Headers   map[string]string
	Body      []byte
	CreatedAt time.Time
}

// Expires returns when the record may be forgotten.
func (r *Record) Expires() time.Time { return r.CreatedAt.Add(TTL) }

// Pending is an idempotency record waiting for the change it guards. A store
// that commits a change calls Seal with the response value, writes the record
// in the same transaction, and marks it Written.
type Pending struct {
	Record
	// Written is set once the record is in the table.
	Written bool
	// Render returns the status and headers with which the HTTP layer
	// answers the committed value v, for routes whose success is not a
	// plain 200 (201 with Location and ETag); nil means 200, no headers.
	Render func(v any) (status int, headers map[string]string)
}

// Seal fills the record with v encoded as the success response, the same
// encoding, status and headers the HTTP layer sends, so that a replay is
// the first response.
func (p *Pending) Seal(v any) (*Record, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	p.Body = b
	p.ContentType = "application/json"
	p.Status, p.Headers = http.StatusOK, nil
	if p.Render != nil {
		p.Status, p.Headers = p.Render(v)
	}
	if p.Status == http.StatusNoContent {
		// A 204 (a DELETE) has no body to replay (empty, not nil: the
		// record stores it as a binary attribute).
		p.Body, p.ContentType = []byte{}, ""
	}
	return &p.Record, nil
}

type pendingKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p *Pending) context.Context {
	return context.WithValue(ctx, pendingKey{}, p)
}

// From returns the pending record carried by ctx, or nil when the request
// had no Idempotency-Key or the record was already written.
func From(ctx context.Context) *Pending {
	p, _ := ctx.Value(pendingKey{}).(*Pending)
	if p == nil || p.Written {
		return nil
	}
	return p
}

// StableID returns an id that the attempts of the request carried by ctx
// share (the same caller, key and request, in the same TTL-long period of
// time, read at now), or newID() when the request has no Idempotency-Key.
// A change that takes effect in steps before the step that writes its
// record (a reminder's emails, sent before the reminder is recorded) names
// its steps with it, so that a retry after a failure between them finds
// what the failed attempt did instead of doing it again. The period keeps
// a key reused after it was forgotten from naming the same id; a retry
// that crosses from one period to the next gets another id, and may do the
// steps again.
func StableID(ctx context.Context, now time.Time, newID func() string) string {
	p := From(ctx)
	if p == nil {
		return newID()
	}
	h := sha256.New()
	period := strconv.FormatInt(now.Unix()/int64(TTL/time.Second), 10)
	for _, part := range []string{p.Scope, p.Key, p.Hash, period} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
