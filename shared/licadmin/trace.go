package licadmin

import (
	"context"
	"sync"
)

// Trace collects, while a request runs, what its log line reports but only
// inner layers learn: the caller's account, known once the store has read
// the caller's claim. It is safe for concurrent use.
type Trace struct {
	mu        sync.Mutex
	accountID string
}

type traceKey struct{}

// WithTrace returns a context that carries a new Trace, and the Trace.
func WithTrace(ctx context.Context) (context.Context, *Trace) {
	t := &Trace{}
	return context.WithValue(ctx, traceKey{}, t), t
}

// NoteAccount records the caller's account in ctx's Trace; it does nothing
// when ctx carries none.
func NoteAccount(ctx context.Context, accountID string) {
	if t, _ := ctx.Value(traceKey{}).(*Trace); t != nil && accountID != "" {
		t.mu.Lock()
		t.accountID = accountID
		t.mu.Unlock()
	}
}

// AccountID returns the account noted, or "" (unknown caller, public
// route, or a failure before the caller was read). A nil Trace returns "".
func (t *Trace) AccountID() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accountID
}
