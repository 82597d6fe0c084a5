package api_test

import (
	"net/http"
	"testing"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// TestRememberedAdmin ensures that what the license service remembers of
// an admin (TestRequestsPerOperation: its next change reads only its user)
// never grants anything: once the admin is demoted, every change
// it sends is refused 403 by the transaction's check of its claim, a
// same-tier modify (which writes nothing) is refused too rather than
// answered 200, a change the pool could not give either answers 403 (the
// caller's check wins), and nothing changes; answers other than a committed
// change are those of a fresh read.
func TestRememberedAdmin(t *testing.T) {
	f := newXFixture(t)
	u1, u2 := f.user(t, "u1@acme.test"), f.user(t, "u2@acme.test")
	boss := "boss@acme.test"
	bossID := f.user(t, boss)
	f.patch(f.admin, bossID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)

	f.assign(f.admin, u1, "eco").Want(t, http.StatusOK)
	f.modify(f.admin, u1, "pro").Want(t, http.StatusOK)

	// Answers of the rules with a remembered admin: as from a fresh read.
	f.assign(f.admin, f.otherID, "eco").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	f.assign(f.admin, u1, "eco").WantProblem(t, http.StatusConflict, licadmin.ELICENSEASSIGNED)
	f.assign(f.admin, "no-such-user", "eco").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)

	// Each case: the admin is remembered from a change, the other admin
	// demotes it, and its next request is refused and writes nothing.
	adminID := f.MustCaller(t, f.admin).UserID
	tier := "eco"
	cases := []struct {
		name string
		send func() *apitest.Response
	}{
		{"modify to the same tier (no write)", func() *apitest.Response { return f.modify(f.admin, u1, tier) }},
		{"modify", func() *apitest.Response { return f.modify(f.admin, u1, "advanced") }},
		{"assign", func() *apitest.Response { return f.assign(f.admin, u2, "eco") }},
		{"assign with none in the pool either", func() *apitest.Response { return f.assign(f.admin, u2, "advanced") }},
		{"transfer", func() *apitest.Response { return f.transfer(f.admin, u1, u2) }},
		{"remove", func() *apitest.Response { return f.remove(f.admin, u1) }},
	}
	for _, c := range cases {
		f.patch(boss, adminID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)
		tier = map[string]string{"eco": "pro", "pro": "eco"}[tier]
		f.modify(f.admin, u1, tier).Want(t, http.StatusOK) // remembered
		f.patch(boss, adminID, `{"role":"user"}`, nil).Want(t, http.StatusOK)
		items := len(f.Scan(t))
		if r := c.send(); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s by a demoted, remembered admin: status %d, want 403; body %s", c.name, r.StatusCode, r.Body)
		}
		if n := len(f.Scan(t)); n != items {
			t.Fatalf("%s: %d items after the demoted admin's request, want %d: something was written", c.name, n, items)
		}
	}
	r := f.h.pool(apitest.Request{Route: routePool, Email: boss})
	r.Want(t, http.StatusOK)
	var p licadmin.Pool
	r.Decode(t, &p)
	wantPool(t, p, licadmin.Tier(tier), map[string]int64{"eco": 2, "pro": 1}[tier], 1)
	f.Invariants(t)
}

func (f *fixture) modify(email, id, tier string) *apitest.Response {
	return f.h.modify(apitest.Request{Route: routeModify, Params: map[string]string{"userId": id}, Email: email, Body: map[string]string{"tier": tier}})
}

func (f *fixture) transfer(email, id, to string) *apitest.Response {
	return f.h.transfer(apitest.Request{Route: routeTransfer, Params: map[string]string{"userId": id}, Email: email, Body: map[string]string{"toUserId": to}})
}

func (f *fixture) remove(email, id string) *apitest.Response {
	return f.h.remove(apitest.Request{Route: routeRemove, Params: map[string]string{"userId": id}, Email: email})
}
