package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

const routeBulk = "POST /v1/licenses/bulk"

// bulkBody is the body of a bulk change.
func bulkBody(action, tier string, ids ...string) map[string]any {
	b := map[string]any{"action": action, "userIds": ids}
	if tier != "" {
		b["tier"] = tier
	}
	return b
}

// bulk sends a bulk change as the fixture's admin.
func (f *fixture) bulk(t *testing.T, body any, headers map[string]string) *apitest.Response {
	t.Helper()
	return apitest.Do(t, api.BulkLicenses(f.App), apitest.Request{Route: routeBulk, Email: f.admin, Body: body, Headers: headers})
}

// users returns the fixture's users ids as the admin reads them.
func (f *fixture) users(t *testing.T, ids ...string) []*licadmin.User {
	t.Helper()
	var us []*licadmin.User
	for _, id := range ids {
		us = append(us, f.h.get(userReq(routeGetUser, f.admin, id, nil)).User(t))
	}
	return us
}

// bulkItems decodes a bulk answer's users.
func bulkItems(t *testing.T, r *apitest.Response) []*licadmin.User {
	t.Helper()
	r.Want(t, http.StatusOK)
	var out licadmin.Users
	r.Decode(t, &out)
	return out.Items
}

// TestBulkAssignModifyRemove ensures each action changes every user named,
// answers them in order as committed, moves the pool counters of every
// tier it touches, writes one audit record naming them all, sends each new
// holder the confirmation email a single assignment sends, and makes the
// logs of removed licenses unreadable (a new log generation).
func TestBulkAssignModifyRemove(t *testing.T) {
	f := newFixture(t) // eco 2, pro 1
	f.MustLicenses(t, f.acct, licadmin.Eco, 2)
	f.MustLicenses(t, f.acct, licadmin.Advanced, 3)
	mail := f.WithEmail(t)
	a, b, c := f.user(t, "a@acme.test"), f.user(t, "b@acme.test"), f.user(t, "c@acme.test")

	got := bulkItems(t, f.bulk(t, bulkBody("assign", "eco", c, a, b), nil))
	if len(got) != 3 || got[0].ID != c || got[1].ID != a || got[2].ID != b {
		t.Fatalf("answer %v, want c, a, b in order", got)
	}
	for _, u := range append(got, f.users(t, a, b, c)...) {
		if u.License == nil || u.License.Tier != licadmin.Eco {
			t.Fatalf("user %s license %+v, want eco", u.Email, u.License)
		}
	}
	wantPool(t, f.pool(t), licadmin.Eco, 4, 3)
	recs := f.Env.AuditLog(t, f.acct)
	if recs[0].Action != store.ActionLicenseBulk || len(recs[0].Subjects) != 3 || recs[0].Details["tier"] != "eco" || recs[0].Actor != f.admin {
		t.Fatalf("audit record %+v, want one license.bulk record naming 3 users", recs[0])
	}
	mail.Drain(t)
	for _, addr := range []string{"a@acme.test", "b@acme.test", "c@acme.test"} {
		if m := mail.To(t, addr); len(m) != 1 || !strings.Contains(strings.ToLower(m[0].Subject), "license") {
			t.Fatalf("mail to %s: %+v, want one license confirmation", addr, m)
		}
	}

	// a to advanced, b to pro, c stays eco: modify c and a to advanced,
	// then b to pro; a user already at the tier is answered as it is.
	f.bulk(t, bulkBody("modify", "advanced", a, c), nil).Want(t, http.StatusOK)
	got = bulkItems(t, f.bulk(t, bulkBody("modify", "advanced", a, b), nil))
	if got[0].License.Tier != licadmin.Advanced || got[1].License.Tier != licadmin.Advanced {
		t.Fatalf("answer %+v %+v, want both advanced", got[0].License, got[1].License)
	}
	p := f.pool(t)
	wantPool(t, p, licadmin.Eco, 4, 0)
	wantPool(t, p, licadmin.Advanced, 3, 3)

	gens := map[string]int64{}
	for _, id := range []string{a, b, c} {
		gens[id] = f.LogGeneration(t, id)
	}
	// Remove with a tier removes only that tier: all hold advanced.
	got = bulkItems(t, f.bulk(t, bulkBody("remove", "advanced", b, a, c), nil))
	for _, u := range got {
		if u.License != nil {
			t.Fatalf("user %s still holds %+v", u.Email, u.License)
		}
		if g := f.LogGeneration(t, u.ID); g != gens[u.ID]+1 {
			t.Fatalf("user %s log generation %d, want %d", u.Email, g, gens[u.ID]+1)
		}
	}
	wantPool(t, f.pool(t), licadmin.Advanced, 3, 0)
	f.Invariants(t)
}

// TestBulkAllOrNothing ensures a bulk change that cannot apply to every
// user changes nothing: a pool short of licenses answers 409
// no_license_available saying how many are needed and available; users
// that cannot take the action (unknown, of another account, holding a
// license already, holding none, holding another tier) are each named in
// errors as userIds[i] with their code, the first one's code answering.
func TestBulkAllOrNothing(t *testing.T) {
	f := newFixture(t) // eco 2, pro 1
	a, b, c := f.user(t, "a@acme.test"), f.user(t, "b@acme.test"), f.user(t, "c@acme.test")
	d := f.user(t, "d@acme.test")
	f.assign(f.admin, c, "pro").Want(t, http.StatusOK)
	before := accountState(t, f.Env, f.acct)
	audits := len(f.Env.AuditLog(t, f.acct))

	p := f.bulk(t, bulkBody("assign", "eco", a, b, d), nil).WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
	if !strings.Contains(p.Detail, "3 eco licenses are needed and 2 are available") {
		t.Fatalf("detail %q, want needed and available", p.Detail)
	}
	cases := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		errors []string
	}{
		{"assign to a holder", bulkBody("assign", "eco", a, c), 409, licadmin.ELICENSEASSIGNED, []string{"userIds[1]:license_already_assigned"}},
		{"unknown and foreign users", bulkBody("assign", "eco", unknownID, a, f.otherID), 404, licadmin.ENOTFOUND, []string{"userIds[0]:not_found", "userIds[2]:not_found"}},
		{"mixed", bulkBody("assign", "eco", c, unknownID), 409, licadmin.ELICENSEASSIGNED, []string{"userIds[0]:license_already_assigned", "userIds[1]:not_found"}},
		{"modify without license", bulkBody("modify", "eco", c, a, b), 409, licadmin.EUSERNOLICENSE, []string{"userIds[1]:user_has_no_license", "userIds[2]:user_has_no_license"}},
		{"remove without license", bulkBody("remove", "", a), 409, licadmin.EUSERNOLICENSE, []string{"userIds[0]:user_has_no_license"}},
		{"remove of another tier", bulkBody("remove", "eco", c), 409, licadmin.EUSERNOLICENSE, []string{"userIds[0]:user_has_no_license"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := f.bulk(t, tc.body, nil).WantProblem(t, tc.status, tc.code)
			if got := fields(p); !slices.Equal(got, tc.errors) {
				t.Fatalf("errors %v, want %v", got, tc.errors)
			}
		})
	}
	if after := accountState(t, f.Env, f.acct); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a refused bulk change changed the account")
	}
	if n := len(f.Env.AuditLog(t, f.acct)); n != audits {
		t.Fatalf("%d audit records, want %d: a refused change wrote one", n, audits)
	}
	f.Invariants(t)
}

// TestBulkValidation ensures malformed bulk changes answer 400 naming the
// field: action, tier, the list and each bad or repeated id; and that
// non-admins are refused.
func TestBulkValidation(t *testing.T) {
	f := newFixture(t)
	a := f.user(t, "a@acme.test")
	many := make([]string, licadmin.MaxBulkUsers+1)
	for i := range many {
		many[i] = fmt.Sprintf("id%d", i)
	}
	cases := []struct {
		name string
		body any
		want []string
	}{
		{"no action", map[string]any{"tier": "eco", "userIds": []string{a}}, []string{"action:required"}},
		{"unknown action", bulkBody("give", "eco", a), []string{"action:unknown_action"}},
		{"assign without tier", bulkBody("assign", "", a), []string{"tier:required"}},
		{"modify without tier", bulkBody("modify", "", a), []string{"tier:required"}},
		{"unknown tier", bulkBody("assign", "gold", a), []string{"tier:unknown_tier"}},
		{"no users", bulkBody("assign", "eco"), []string{"userIds:required"}},
		{"users missing", map[string]any{"action": "assign", "tier": "eco"}, []string{"userIds:required"}},
		{"too many users", bulkBody("assign", "eco", many...), []string{"userIds:too_many"}},
		{"repeated and empty ids", bulkBody("assign", "eco", a, "", a, a), []string{"userIds[1]:required", "userIds[2]:duplicate", "userIds[3]:duplicate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := f.bulk(t, tc.body, nil).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
			if got := fields(p); !slices.Equal(got, tc.want) {
				t.Fatalf("errors %v, want %v", got, tc.want)
			}
		})
	}
	for _, body := range []string{`{"action":"assign","tier":"eco","userIds":"x"}`, `{"action":"assign","tier":"eco","userIds":[1]}`, `[]`} {
		f.bulk(t, body, nil).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	plain := "plain@acme.test"
	f.userAs(t, f.admin, plain, "user")
	apitest.Do(t, api.BulkLicenses(f.App), apitest.Request{Route: routeBulk, Email: plain, Body: bulkBody("assign", "eco", a)}).
		WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	apitest.Do(t, api.BulkLicenses(f.App), apitest.Request{Route: routeBulk, Body: bulkBody("assign", "eco", a)}).
		WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
	wantPool(t, f.pool(t), licadmin.Eco, 2, 0)
}

// transactItems returns a DynamoDB option that records the number of items
// of every TransactWriteItems call.
func transactItems() (func(*dynamodb.Options), func() []int) {
	var mu sync.Mutex
	var sizes []int
	mw := middleware.InitializeMiddlewareFunc("countItems", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if tx, ok := in.Parameters.(*dynamodb.TransactWriteItemsInput); ok {
			mu.Lock()
			sizes = append(sizes, len(tx.TransactItems))
			mu.Unlock()
		}
		return next.HandleInitialize(ctx, in)
	})
	return func(o *dynamodb.Options) {
			o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Initialize.Add(mw, middleware.Before) })
		}, func() []int {
			mu.Lock()
			defer mu.Unlock()
			return append([]int(nil), sizes...)
		}
}

// TestBulkLimitFitsOneTransaction ensures the documented limit is the
// most one transaction holds: an assignment of MaxBulkUsers users with an
// Idempotency-Key (the largest change: 3 items and one per user) is one
// TransactWriteItems of at most 100 items, and a replay answers the same.
func TestBulkLimitFitsOneTransaction(t *testing.T) {
	if licadmin.MaxBulkUsers < 25 {
		t.Fatalf("MaxBulkUsers = %d, the contract says at least 25", licadmin.MaxBulkUsers)
	}
	opt, sizes := transactItems()
	env := apitest.New(t, opt)
	admin := "admin@acme.test"
	acct, _ := env.MustAccount(t, "Acme", admin)
	env.MustLicenses(t, acct, licadmin.Pro, licadmin.MaxBulkUsers)
	create := api.CreateUser(env.App)
	var ids []string
	for i := range licadmin.MaxBulkUsers {
		r := apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: admin, Body: userBody(fmt.Sprintf("u%d@acme.test", i), "user")})
		ids = append(ids, r.User(t).ID)
	}
	before := len(sizes())
	h := api.BulkLicenses(env.App)
	req := apitest.Request{Route: routeBulk, Email: admin, Body: bulkBody("assign", "pro", ids...), Headers: idemKey("bulk-max")}
	first := apitest.Do(t, h, req)
	if got := bulkItems(t, first); len(got) != licadmin.MaxBulkUsers {
		t.Fatalf("%d users answered, want %d", len(got), licadmin.MaxBulkUsers)
	}
	calls := sizes()[before:]
	if len(calls) != 1 || calls[0] > 100 {
		t.Fatalf("transactions of %v items, want one of at most 100", calls)
	}
	wantReplay(t, first, apitest.Do(t, h, req))
	env.Invariants(t)
}

// TestBulkRacesSingleChanges ensures SPEC rules 1 and 2 under bulk
// changes racing single ones on a small pool: bulk assigns, modifies and
// removes of random groups, and single assigns, modifies and removes, never
// oversubscribe the pool; each bulk change applies to all its users or to
// none, as the answers and the audit records show.
func TestBulkRacesSingleChanges(t *testing.T) {
	r := newRaceEnv(t, 12)
	r.MustLicenses(t, r.acct, licadmin.Eco, 5)
	r.MustLicenses(t, r.acct, licadmin.Pro, 3)
	raceBulk(t, r, 6, 25, 3)
	r.Invariants(t)
}

// raceBulk runs workers × ops random bulk and single license changes, and
// checks every bulk answer: a success names every user with the license
// asked for, a refusal is one of the expected codes.
func raceBulk(t *testing.T, r *raceEnv, workers, ops int, seed uint64) {
	t.Helper()
	bulk := api.BulkLicenses(r.App)
	seen := newAnswers("ok", licadmin.ENOLICENSE, licadmin.ELICENSEASSIGNED, licadmin.EUSERNOLICENSE)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for range ops {
				tier := string(licadmin.Tiers[rng.IntN(2)*2]) // eco or pro
				var resp *apitest.Response
				kind := "single"
				switch op := rng.IntN(10); {
				case op < 5:
					kind = "bulk"
					perm := rng.Perm(len(r.users))[:2+rng.IntN(2)]
					var ids []string
					for _, i := range perm {
						ids = append(ids, r.users[i])
					}
					action := []string{"assign", "assign", "modify", "remove"}[rng.IntN(4)]
					if action == "remove" {
						tier = ""
					}
					resp = apitest.Do(t, bulk, apitest.Request{Route: routeBulk, Email: r.admin, Body: bulkBody(action, tier, ids...)})
					if resp.StatusCode == http.StatusOK {
						var out licadmin.Users
						resp.Decode(t, &out)
						for i, u := range out.Items {
							if u.ID != ids[i] || (action == "remove") != (u.License == nil) || (tier != "" && u.License.Tier != licadmin.Tier(tier)) {
								t.Errorf("bulk %s %s answered %+v for %s", action, tier, u, ids[i])
							}
						}
					}
				case op < 7:
					resp = r.do(r.assign, routeAssign, map[string]string{"userId": r.users[rng.IntN(len(r.users))]}, nil, map[string]string{"tier": tier})
				case op < 8:
					resp = r.do(r.modify, routeModify, map[string]string{"userId": r.users[rng.IntN(len(r.users))]}, nil, map[string]string{"tier": tier})
				default:
					resp = r.do(r.remove, routeRemove, map[string]string{"userId": r.users[rng.IntN(len(r.users))]}, nil, nil)
				}
				seen.record(t, r, kind+":", resp)
			}
		})
	}
	wg.Wait()
	seen.mustHave(t, "bulk:ok", "no bulk change succeeded")
	// Every bulk record names users whose license changed as it says:
	// nothing half-applied would leave a record without its users, and
	// the invariants above count every holder.
	for _, rec := range r.Env.AuditLog(t, r.acct) {
		if rec.Action == store.ActionLicenseBulk && len(rec.Subjects) < 2 {
			t.Errorf("bulk audit record %+v names fewer users than any request sent", rec)
		}
	}
}

// TestBulkFaults ensures bulk changes are retried through injected
// conflicts and throttling to the right result, and that a committed
// change whose answer was lost is applied once: the pool counts each
// license once and the answer is a success.
func TestBulkFaults(t *testing.T) {
	t.Run("conflicts and throttling", func(t *testing.T) {
		raceUnderFaults(t, 20, func(r *raceEnv) { raceBulk(t, r, 4, 15, 4) })
	})
	t.Run("lost response", func(t *testing.T) {
		opt, calls, arm := apitest.LoseNextTransaction()
		r := newRaceEnv(t, 3, opt)
		r.MustLicenses(t, r.acct, licadmin.Eco, 3)
		arm()
		resp := apitest.Do(t, api.BulkLicenses(r.App), apitest.Request{Route: routeBulk, Email: r.admin, Body: bulkBody("assign", "eco", r.users...)})
		resp.Want(t, http.StatusOK)
		if calls.Get("lost:TransactWriteItems") != 1 {
			t.Fatalf("the lost response was not injected: %v", calls.Snapshot())
		}
		var pool licadmin.Pool
		r.do(r.pool, routePool, nil, nil, nil).Decode(t, &pool)
		wantPool(t, pool, licadmin.Eco, 3, 3)
		r.Invariants(t)
	})
}

// TestBulkIdempotency ensures a bulk change retried with its
// Idempotency-Key answers the first response and changes nothing more, and
// that the key with another body answers 422.
func TestBulkIdempotency(t *testing.T) {
	f := newFixture(t)
	a, b := f.user(t, "a@acme.test"), f.user(t, "b@acme.test")
	first := f.bulk(t, bulkBody("assign", "eco", a, b), idemKey("k1"))
	first.Want(t, http.StatusOK)
	f.bulk(t, bulkBody("remove", "", a, b), nil).Want(t, http.StatusOK)
	wantReplay(t, first, f.bulk(t, bulkBody("assign", "eco", a, b), idemKey("k1")))
	wantPool(t, f.pool(t), licadmin.Eco, 2, 0)
	f.bulk(t, bulkBody("assign", "eco", b, a), idemKey("k1")).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
}
