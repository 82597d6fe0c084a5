package api_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

func TestMain(m *testing.M) { os.Exit(apitest.RunTests(m)) }

const (
	routePool     = "GET /v1/licenses"
	routeAssign   = "POST /v1/users/{userId}/license"
	routeModify   = "PATCH /v1/users/{userId}/license"
	routeRemove   = "DELETE /v1/users/{userId}/license"
	routeTransfer = "POST /v1/users/{userId}/license/transfer"
	routeDelete   = "DELETE /v1/licenses/{tier}"
	routeUsers    = "POST /v1/users"
	routeGetUser  = "GET /v1/users/{userId}"
	routeList     = "GET /v1/users"
)

// fixture is an account with an admin, a pool and a few users, plus a
// second account to prove isolation.
type fixture struct {
	*apitest.Env
	admin, acct    string
	other, otherID string // admin email and a user id of another account
	h              handlers
	// memoryOffset is how far outliveMemory moved the ingest clock.
	memoryOffset time.Duration
}

type handlers struct {
	pool, assign, modify, remove, transfer, del, create, get, list func(apitest.Request) *apitest.Response
}

func newFixture(t *testing.T, optFns ...func(*dynamodb.Options)) *fixture {
	t.Helper()
	env := apitest.New(t, optFns...)
	f := &fixture{Env: env, admin: "admin@acme.test", other: "boss@globex.test"}
	f.acct, _ = env.MustAccount(t, "Acme", f.admin)
	_, f.otherID = env.MustAccount(t, "Globex", f.other)
	env.MustLicenses(t, f.acct, licadmin.Eco, 2)
	env.MustLicenses(t, f.acct, licadmin.Pro, 1)
	call := func(h apigw.Handler) func(apitest.Request) *apitest.Response {
		return func(r apitest.Request) *apitest.Response { return apitest.Do(t, h, r) }
	}
	a := env.App
	f.h = handlers{
		pool: call(api.GetLicensePool(a)), assign: call(api.AssignLicense(a)), modify: call(api.ModifyLicense(a)),
		remove: call(api.RemoveLicense(a)), transfer: call(api.TransferLicense(a)), del: call(api.DeletePoolLicenses(a)),
		create: call(api.CreateUser(a)), get: call(api.GetUser(a)), list: call(api.ListUsers(a)),
	}
	return f
}

// user adds a user to the fixture's account and returns its id.
func (f *fixture) user(t *testing.T, email string) string {
	t.Helper()
	r := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{
		"email": email, "firstName": "Ada", "lastName": "Lovelace", "language": "en", "role": "user"}})
	r.Want(t, http.StatusCreated)
	return r.User(t).ID
}

func (f *fixture) assign(email, id, tier string) *apitest.Response {
	return f.h.assign(apitest.Request{Route: routeAssign, Params: map[string]string{"userId": id}, Email: email, Body: map[string]string{"tier": tier}})
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

func (f *fixture) pool(t *testing.T) licadmin.Pool {
	t.Helper()
	r := f.h.pool(apitest.Request{Route: routePool, Email: f.admin})
	r.Want(t, http.StatusOK)
	var p licadmin.Pool
	r.Decode(t, &p)
	return p
}

// wantPool checks one tier's counters.
func wantPool(t *testing.T, p licadmin.Pool, tier licadmin.Tier, purchased, assigned int64) {
	t.Helper()
	got := p.Tier(tier)
	if got.Purchased != purchased || got.Assigned != assigned || got.Available != purchased-assigned {
		t.Fatalf("%s pool = %+v, want purchased %d assigned %d available %d", tier, got, purchased, assigned, purchased-assigned)
	}
}

// TestPoolSummary ensures the summary lists the three tiers in order with
// their counters, for admins only.
func TestPoolSummary(t *testing.T) {
	f := newFixture(t)
	p := f.pool(t)
	if len(p.Tiers) != 3 || p.Tiers[0].Tier != licadmin.Eco || p.Tiers[1].Tier != licadmin.Advanced || p.Tiers[2].Tier != licadmin.Pro {
		t.Fatalf("tiers = %+v, want eco, advanced, pro", p.Tiers)
	}
	wantPool(t, p, licadmin.Eco, 2, 0)
	wantPool(t, p, licadmin.Advanced, 0, 0)
	wantPool(t, p, licadmin.Pro, 1, 0)

	plain := "plain@acme.test"
	f.user(t, plain)
	f.h.pool(apitest.Request{Route: routePool, Email: plain}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.h.pool(apitest.Request{Route: routePool}).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
	f.h.pool(apitest.Request{Route: routePool, Email: "stranger@nowhere.test"}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
}

// TestAssign covers every answer of POST /v1/users/{userId}/license.
func TestAssign(t *testing.T) {
	f := newFixture(t)
	u1, u2, u3 := f.user(t, "u1@acme.test"), f.user(t, "u2@acme.test"), f.user(t, "u3@acme.test")

	got := f.assign(f.admin, u1, "eco").User(t)
	if got.License == nil || got.License.Tier != licadmin.Eco || got.License.AssignedAt.IsZero() {
		t.Fatalf("license = %+v, want eco with assignedAt", got.License)
	}
	f.assign(f.admin, u1, "pro").WantProblem(t, http.StatusConflict, licadmin.ELICENSEASSIGNED)
	f.assign(f.admin, u2, "eco").Want(t, http.StatusOK)
	f.assign(f.admin, u3, "eco").WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
	f.assign(f.admin, u3, "advanced").WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
	f.assign(f.admin, "01UNKNOWN", "eco").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	f.assign(f.admin, u3, "gold").WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	f.h.assign(apitest.Request{Route: routeAssign, Params: map[string]string{"userId": u3}, Email: f.admin, Body: "{"}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	f.h.assign(apitest.Request{Route: routeAssign, Params: map[string]string{"userId": u3}, Email: f.admin}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	f.h.assign(apitest.Request{Route: routeAssign, Params: map[string]string{"userId": u3}, Email: f.admin, Body: `{"tier":"pro","x":1}`}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)

	wantPool(t, f.pool(t), licadmin.Eco, 2, 2)
	f.Invariants(t)
}

// TestModify covers PATCH: swap of counters, same-tier no-op, errors, and
// the pro-only settings dropped on leaving Pro.
func TestModify(t *testing.T) {
	f := newFixture(t)
	u := f.user(t, "u@acme.test")
	modify := func(tier string) *apitest.Response {
		return f.h.modify(apitest.Request{Route: routeModify, Params: map[string]string{"userId": u}, Email: f.admin, Body: map[string]string{"tier": tier}})
	}
	modify("pro").WantProblem(t, http.StatusConflict, licadmin.EUSERNOLICENSE)
	f.assign(f.admin, u, "eco").Want(t, http.StatusOK)

	get := func() *apitest.Response {
		return f.h.get(apitest.Request{Route: routeGetUser, Params: map[string]string{"userId": u}, Email: f.admin})
	}
	before := get()
	gen := f.LogGeneration(t, u)
	same := modify("eco").User(t)
	if after := get(); after.Headers["ETag"] != before.Headers["ETag"] || !same.UpdatedAt.Equal(before.User(t).UpdatedAt) {
		t.Fatalf("same-tier PATCH changed the user: ETag %s -> %s", before.Headers["ETag"], after.Headers["ETag"])
	}
	got := modify("pro").User(t)
	if got.License.Tier != licadmin.Pro {
		t.Fatalf("tier = %s, want pro", got.License.Tier)
	}
	p := f.pool(t)
	wantPool(t, p, licadmin.Eco, 2, 0)
	wantPool(t, p, licadmin.Pro, 1, 1)
	modify("advanced").WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
	if f.LogGeneration(t, u) != gen {
		t.Fatalf("modify changed the log generation: logs must be kept")
	}
	f.Invariants(t)
}

// TestRemove covers DELETE of a license: the pool gets it back and the
// user's log generation moves on so its logs are unreadable (rule 6).
func TestRemove(t *testing.T) {
	f := newFixture(t)
	u := f.user(t, "u@acme.test")
	remove := func() *apitest.Response {
		return f.h.remove(apitest.Request{Route: routeRemove, Params: map[string]string{"userId": u}, Email: f.admin})
	}
	remove().WantProblem(t, http.StatusConflict, licadmin.EUSERNOLICENSE)
	f.assign(f.admin, u, "pro").Want(t, http.StatusOK)
	gen := f.LogGeneration(t, u)
	got := remove().User(t)
	if got.License != nil {
		t.Fatalf("license = %+v, want null", got.License)
	}
	if g := f.LogGeneration(t, u); g != gen+1 {
		t.Fatalf("log generation %d after remove, want %d", g, gen+1)
	}
	wantPool(t, f.pool(t), licadmin.Pro, 1, 0)
	remove().WantProblem(t, http.StatusConflict, licadmin.EUSERNOLICENSE)
	f.Invariants(t)
}

// TestTransfer covers the license transfer: target gets the same tier,
// the pool is unchanged, the former holder's logs go, and each error.
func TestTransfer(t *testing.T) {
	f := newFixture(t)
	a, b, c := f.user(t, "a@acme.test"), f.user(t, "b@acme.test"), f.user(t, "c@acme.test")
	transfer := func(from, to string) *apitest.Response {
		return f.h.transfer(apitest.Request{Route: routeTransfer, Params: map[string]string{"userId": from}, Email: f.admin, Body: map[string]string{"toUserId": to}})
	}
	transfer(a, b).WantProblem(t, http.StatusConflict, licadmin.EUSERNOLICENSE)
	f.assign(f.admin, a, "pro").Want(t, http.StatusOK)
	f.assign(f.admin, c, "eco").Want(t, http.StatusOK)
	transfer(a, c).WantProblem(t, http.StatusConflict, licadmin.ETARGETHASLICENSE)
	transfer(a, a).WantProblem(t, http.StatusConflict, licadmin.ETARGETHASLICENSE)
	transfer(a, "01NOPE").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	transfer(a, f.otherID).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	f.h.transfer(apitest.Request{Route: routeTransfer, Params: map[string]string{"userId": a}, Email: f.admin, Body: `{}`}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)

	gen := f.LogGeneration(t, a)
	got := transfer(a, b).User(t)
	if got.ID != b || got.License == nil || got.License.Tier != licadmin.Pro {
		t.Fatalf("transfer answered %+v, want user %s with pro", got, b)
	}
	if g := f.LogGeneration(t, a); g != gen+1 {
		t.Fatalf("former holder's log generation %d, want %d", g, gen+1)
	}
	wantPool(t, f.pool(t), licadmin.Pro, 1, 1)
	f.Invariants(t)
}

// TestDeleteFromPool covers DELETE /v1/licenses/{tier}?quantity=N.
func TestDeleteFromPool(t *testing.T) {
	f := newFixture(t)
	u := f.user(t, "u@acme.test")
	f.assign(f.admin, u, "eco").Want(t, http.StatusOK)
	del := func(tier, q string) *apitest.Response {
		return f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": tier}, Query: map[string]string{"quantity": q}, Email: f.admin})
	}
	del("eco", "2").WantProblem(t, http.StatusConflict, licadmin.ELICENSESINUSE)
	for _, q := range []string{"0", "-1", "x", ""} {
		del("eco", q).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	del("gold", "1").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	r := del("eco", "1")
	r.Want(t, http.StatusOK)
	var p licadmin.Pool
	r.Decode(t, &p)
	wantPool(t, p, licadmin.Eco, 1, 1)
	wantPool(t, f.pool(t), licadmin.Eco, 1, 1)
	del("eco", "1").WantProblem(t, http.StatusConflict, licadmin.ELICENSESINUSE)
	f.Invariants(t)
}

// TestDemotedAdmin ensures a license change is authorised by its own
// read of the caller's claim: an admin demoted between two of its changes
// is refused 403 at once by its next change of every kind, a same-tier
// modify (which writes nothing) and an assign the pool could not give
// included, and nothing changes. The claim is read by every change, never
// remembered (TestRequestsPerOperation).
//
// A demotion that commits while a change is in flight, after the change's
// read and before its transaction, is ordered after the change: the change
// commits (the admin was one when it was decided, and the transaction
// holds no check of the claim), and the admin's next change is refused.
func TestDemotedAdmin(t *testing.T) {
	f := newXFixture(t)
	opt, beforeNext, ran := apitest.BeforeNextTransaction()
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	u1, u2 := f.user(t, "u1@acme.test"), f.user(t, "u2@acme.test")
	boss := "boss@acme.test"
	bossID := f.user(t, boss)
	f.patch(f.admin, bossID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)

	f.assign(f.admin, u1, "eco").Want(t, http.StatusOK)
	f.modify(f.admin, u1, "pro").Want(t, http.StatusOK)
	f.assign(f.admin, f.otherID, "eco").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	f.assign(f.admin, u1, "eco").WantProblem(t, http.StatusConflict, licadmin.ELICENSEASSIGNED)
	f.assign(f.admin, "no-such-user", "eco").WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)

	// Each case: the admin makes a change, the other admin demotes it,
	// and its next request is refused and writes nothing.
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
		f.modify(f.admin, u1, tier).Want(t, http.StatusOK)
		f.patch(boss, adminID, `{"role":"user"}`, nil).Want(t, http.StatusOK)
		items := len(f.Scan(t))
		if r := c.send(); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s by a demoted admin: status %d, want 403; body %s", c.name, r.StatusCode, r.Body)
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

	// Demoted while its change is in flight.
	f.patch(boss, adminID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)
	beforeNext(func() { f.patch(boss, adminID, `{"role":"user"}`, nil).Want(t, http.StatusOK) })
	f.assign(f.admin, u2, "eco").Want(t, http.StatusOK)
	if !ran() {
		t.Fatal("the demotion did not run during the assign")
	}
	if c := f.MustCaller(t, f.admin); c.IsAdmin() {
		t.Fatal("the admin is still an admin after the demotion")
	}
	f.remove(f.admin, u2).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.Invariants(t)
}
