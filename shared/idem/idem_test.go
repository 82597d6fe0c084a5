package idem

import (
	"context"
	"testing"
	"time"
)

// TestStableID holds what makes a request's steps findable by its retry:
// the same caller, key and request within one TTL-long period share an id;
// another key, another request, a later period or no key get another.
func TestStableID(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	fresh := func() string { return "fresh" }
	id := func(scope, key, hash string, at time.Time) string {
		ctx := With(context.Background(), &Pending{Record: Record{Scope: scope, Key: key, Hash: hash}})
		return StableID(ctx, at, fresh)
	}
	first := id("admin@acme.test", "k1", "h1", now)
	if first == "fresh" || len(first) != 32 {
		t.Fatalf("id %q, want 32 hex characters", first)
	}
	if again := id("admin@acme.test", "k1", "h1", now.Add(time.Hour)); again != first {
		t.Errorf("a retry an hour later: %q, want %q", again, first)
	}
	for name, other := range map[string]string{
		"another caller":             id("boss@acme.test", "k1", "h1", now),
		"another key":                id("admin@acme.test", "k2", "h1", now),
		"another request":            id("admin@acme.test", "k1", "h2", now),
		"the key reused a day later": id("admin@acme.test", "k1", "h1", now.Add(TTL)),
	} {
		if other == first {
			t.Errorf("%s: the same id %q", name, first)
		}
	}
	if got := StableID(context.Background(), now, fresh); got != "fresh" {
		t.Errorf("no key: %q, want a new id", got)
	}
	written := With(context.Background(), &Pending{Record: Record{Scope: "admin@acme.test", Key: "k1", Hash: "h1"}, Written: true})
	if got := StableID(written, now, fresh); got != "fresh" {
		t.Errorf("a record already written: %q, want a new id", got)
	}
}
