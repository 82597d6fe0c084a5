package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
)

// idemItems counts the idempotency records in the table.
func idemItems(t *testing.T, env *apitest.Env) int {
	t.Helper()
	n := 0
	for _, it := range env.Scan(t) {
		if strings.HasPrefix(avString(it["pk"]), "IDEM#") {
			n++
		}
	}
	return n
}

// TestReplayAuthorized ensures a remembered answer goes only to a caller
// who may still make the request: an admin who repeats a request after
// being demoted, or deleted, is answered 403 as a fresh request would be,
// never the answer it had as an admin; a reused key of a demoted admin is
// 403 too, not idempotency_key_reused.
func TestReplayAuthorized(t *testing.T) {
	f := newXFixture(t)
	boss := "boss@acme.test"
	bossID := f.userAs(t, f.admin, boss, "admin")
	u := f.user(t, "u@acme.test")

	req := withHeaders(userReq(routeAssign, boss, u, map[string]string{"tier": "eco"}), idemKey("k1"))
	first := f.h.assign(req)
	first.Want(t, http.StatusOK)
	wantReplay(t, first, f.h.assign(req))

	f.patch(f.admin, bossID, map[string]string{"role": "user"}, nil).Want(t, http.StatusOK)
	f.h.assign(req).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	other := withHeaders(userReq(routeAssign, boss, u, map[string]string{"tier": "pro"}), idemKey("k1"))
	f.h.assign(other).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)

	f.deleteUser(userReq(routeDeleteUser, f.admin, bossID, nil)).Want(t, http.StatusNoContent)
	f.h.assign(req).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	wantPool(t, f.pool(t), licadmin.Eco, 2, 1)
}

// TestIdempotencyKeyScopes ensures records of (scope, key) pairs whose
// plain join would be the same string ("a#b" + "c" and "a" + "b#c") are
// distinct records.
func TestIdempotencyKeyScopes(t *testing.T) {
	env := apitest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()
	a := &idem.Record{Scope: "a#b@acme.test", Key: "c", Hash: "h1", Status: 200, Body: []byte("1"), CreatedAt: now}
	b := &idem.Record{Scope: "a", Key: "b@acme.test#c", Hash: "h2", Status: 200, Body: []byte("2"), CreatedAt: now}
	for _, r := range []*idem.Record{a, b} {
		if err := env.App.Store.PutIdempotency(ctx, r); err != nil {
			t.Fatalf("put %s/%s: %v", r.Scope, r.Key, err)
		}
	}
	for _, r := range []*idem.Record{a, b} {
		got, err := env.App.Store.GetIdempotency(ctx, r.Scope, r.Key)
		if err != nil || got == nil || got.Hash != r.Hash {
			t.Fatalf("get %s/%s: %+v, %v; want hash %s", r.Scope, r.Key, got, err, r.Hash)
		}
	}
}

// TestPublicRefusalsNotRemembered ensures an anonymous client looping on
// POST /v1/activations with fresh Idempotency-Keys writes nothing: a
// refusal (410, 400) on a public route is never remembered.
func TestPublicRefusalsNotRemembered(t *testing.T) {
	env := apitest.New(t)
	env.MustAccount(t, "Acme", "admin@acme.test")
	before := len(env.Scan(t))
	h := api.Activate(env.App)
	for i, body := range []any{
		map[string]string{"token": "bm90LWEtdG9rZW4"}, map[string]string{"token": strings.Repeat("A", 43)}, `{"token":`, map[string]string{},
	} {
		r := apitest.Do(t, h, apitest.Request{Route: "POST /v1/activations", Body: body,
			Headers: map[string]string{"Idempotency-Key": "fresh-" + string(rune('a'+i))}})
		if r.StatusCode != http.StatusGone && r.StatusCode != http.StatusBadRequest {
			t.Fatalf("body %v: status %d, want 410 or 400", body, r.StatusCode)
		}
	}
	if n := len(env.Scan(t)); n != before || idemItems(t, env) != 0 {
		t.Fatalf("anonymous refusals wrote %d items", n-before)
	}
}

// TestDeleteFromPoolChecksCallerFirst ensures the caller's check is the
// first item of the delete-from-pool transaction: an admin demoted after
// its request was planned is answered 403, not what the pool holds
// (licenses_in_use), and nothing changes.
func TestDeleteFromPoolChecksCallerFirst(t *testing.T) {
	f := newXFixture(t)
	boss := "boss@acme.test"
	bossID := f.userAs(t, f.admin, boss, "admin")
	stale := callerOf(t, f.fixture, boss)
	pool := f.pool(t)
	f.patch(f.admin, bossID, map[string]string{"role": "user"}, nil).Want(t, http.StatusOK)
	for _, q := range []int64{1, 100} { // enough unassigned, and not
		_, err := f.App.Store.DeleteFromPool(context.Background(), stale, &pool, licadmin.Eco, q, time.Now().UTC())
		if code := licadmin.ErrorCode(err); code != licadmin.EFORBIDDEN {
			t.Fatalf("quantity %d by a demoted admin: %v, want forbidden", q, err)
		}
	}
	wantPool(t, f.pool(t), licadmin.Eco, 2, 0)
}
