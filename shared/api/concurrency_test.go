package api_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// raceEnv is an account with n users and the license handlers, over a
// client with optFns (fault injection).
type raceEnv struct {
	*apitest.Env
	t                                           *testing.T
	admin, acct                                 string
	users                                       []string
	assign, modify, remove, transfer, del, pool apigw.Handler
}

func newRaceEnv(t *testing.T, users int, optFns ...func(*dynamodb.Options)) *raceEnv {
	t.Helper()
	env := apitest.New(t, optFns...)
	r := &raceEnv{Env: env, t: t, admin: "admin@race.test"}
	r.acct, _ = env.MustAccount(t, "Race", r.admin)
	create := api.CreateUser(env.App)
	for i := range users {
		resp := apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: r.admin, Body: map[string]string{
			"email": fmt.Sprintf("user%d@race.test", i), "firstName": "U", "lastName": fmt.Sprint(i)}})
		r.users = append(r.users, resp.User(t).ID)
	}
	a := env.App
	r.assign, r.modify, r.remove = api.AssignLicense(a), api.ModifyLicense(a), api.RemoveLicense(a)
	r.transfer, r.del, r.pool = api.TransferLicense(a), api.DeletePoolLicenses(a), api.GetLicensePool(a)
	return r
}

func (r *raceEnv) do(h apigw.Handler, route string, params map[string]string, query map[string]string, body any) *apitest.Response {
	return apitest.Do(r.t, h, apitest.Request{Route: route, Params: params, Query: query, Email: r.admin, Body: body})
}

func (r *raceEnv) codeOf(resp *apitest.Response) string {
	if resp.StatusCode < 300 {
		return "ok"
	}
	var p apigw.Problem
	resp.Decode(r.t, &p)
	return p.Code
}

// answers tallies the answers of racing workers by code, so that a race
// test can fail on a code it does not expect and on a run where nothing
// succeeded.
type answers struct {
	mu       sync.Mutex
	expected map[string]bool
	seen     map[string]int
}

// newAnswers returns a tally that accepts the expected codes ("ok" for a
// success).
func newAnswers(expected ...string) *answers {
	a := &answers{expected: map[string]bool{}, seen: map[string]int{}}
	for _, code := range expected {
		a.expected[code] = true
	}
	return a
}

// record counts resp's code under prefix and reports a code not expected.
func (a *answers) record(t *testing.T, r *raceEnv, prefix string, resp *apitest.Response) {
	code := r.codeOf(resp)
	a.mu.Lock()
	a.seen[prefix+code]++
	a.mu.Unlock()
	if !a.expected[code] {
		t.Errorf("unexpected answer %d %s", resp.StatusCode, resp.Body)
	}
}

// want stops the test unless the tally is exactly counts.
func (a *answers) want(t *testing.T, counts map[string]int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !maps.Equal(a.seen, counts) {
		t.Fatalf("answers = %v, want %v", a.seen, counts)
	}
}

// mustHave logs the tally and stops the test when nothing was counted
// under key, saying msg.
func (a *answers) mustHave(t *testing.T, key, msg string) {
	t.Helper()
	t.Logf("answers: %v", a.seen)
	if a.seen[key] == 0 {
		t.Fatalf("%s: %v", msg, a.seen)
	}
}

// TestConcurrentAssignNeverOversubscribes ensures rule 1 of docs/api.md under load:
// 100 goroutines assigning from a pool of 10 → exactly 10 succeed and 90
// answer no_license_available, and the counters match the holders.
func TestConcurrentAssignNeverOversubscribes(t *testing.T) {
	r := newRaceEnv(t, 100)
	r.MustLicenses(t, r.acct, licadmin.Eco, 10)
	seen := newAnswers("ok", licadmin.ENOLICENSE)
	apitest.Concurrently(len(r.users), func(i int) {
		seen.record(t, r, "", r.do(r.assign, routeAssign, map[string]string{"userId": r.users[i]}, nil, map[string]string{"tier": "eco"}))
	})
	seen.want(t, map[string]int{"ok": 10, licadmin.ENOLICENSE: 90})
	r.Invariants(t)
}

// TestConcurrentAssignSameUser ensures rule 2 of docs/api.md: 20 concurrent assigns
// of different tiers to one user give it exactly one license.
func TestConcurrentAssignSameUser(t *testing.T) {
	r := newRaceEnv(t, 1)
	for _, tier := range licadmin.Tiers {
		r.MustLicenses(t, r.acct, tier, 10)
	}
	seen := newAnswers("ok", licadmin.ELICENSEASSIGNED)
	apitest.Concurrently(20, func(i int) {
		tier := licadmin.Tiers[i%3]
		seen.record(t, r, "", r.do(r.assign, routeAssign, map[string]string{"userId": r.users[0]}, nil, map[string]string{"tier": string(tier)}))
	})
	seen.want(t, map[string]int{"ok": 1, licadmin.ELICENSEASSIGNED: 19})
	r.Invariants(t)
}

// raceMix runs workers × ops random license operations on one small pool,
// and fails on any answer that is not a success or an expected conflict.
func raceMix(t *testing.T, r *raceEnv, workers, ops int, seed uint64) {
	t.Helper()
	seen := newAnswers("ok", licadmin.ENOLICENSE, licadmin.ELICENSEASSIGNED, licadmin.EUSERNOLICENSE,
		licadmin.ETARGETHASLICENSE, licadmin.ELICENSESINUSE)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for range ops {
				id := r.users[rng.IntN(len(r.users))]
				tier := string(licadmin.Tiers[rng.IntN(3)])
				var resp *apitest.Response
				switch op := rng.IntN(20); {
				case op < 6:
					resp = r.do(r.assign, routeAssign, map[string]string{"userId": id}, nil, map[string]string{"tier": tier})
				case op < 10:
					resp = r.do(r.modify, routeModify, map[string]string{"userId": id}, nil, map[string]string{"tier": tier})
				case op < 13:
					resp = r.do(r.remove, routeRemove, map[string]string{"userId": id}, nil, nil)
				case op < 18:
					to := r.users[rng.IntN(len(r.users))]
					resp = r.do(r.transfer, routeTransfer, map[string]string{"userId": id}, nil, map[string]string{"toUserId": to})
				case op < 19:
					resp = r.do(r.del, routeDelete, map[string]string{"tier": tier}, map[string]string{"quantity": "1"}, nil)
				default:
					// Billing adds licenses while admins work.
					r.MustLicenses(t, r.acct, licadmin.Tier(tier), 1)
					continue
				}
				seen.record(t, r, "", resp)
			}
		})
	}
	wg.Wait()
	seen.mustHave(t, "ok", "no operation succeeded")
}

// TestConcurrentMixKeepsInvariants ensures rules 1 and 2 of docs/api.md hold after a
// random mix of assign, modify, remove, transfer and delete-from-pool
// racing on one pool.
func TestConcurrentMixKeepsInvariants(t *testing.T) {
	r := newRaceEnv(t, 12)
	r.MustLicenses(t, r.acct, licadmin.Eco, 6)
	r.MustLicenses(t, r.acct, licadmin.Advanced, 4)
	r.MustLicenses(t, r.acct, licadmin.Pro, 3)
	raceMix(t, r, 8, 40, 1)
	r.Invariants(t)
}

// conflictsAndThrottling is the fault policy the racing tests share: every
// third TransactWriteItems is cancelled by a conflict and every fifth call of
// any kind is throttled.
func conflictsAndThrottling(op string, n int) apitest.Fault {
	switch {
	case op == "TransactWriteItems" && n%3 == 0:
		return apitest.Conflict
	case n%5 == 0:
		return apitest.Throttle
	}
	return apitest.NoFault
}

// TestFaultsConflictsAndThrottling ensures that transactions cancelled by
// conflicts and throttled calls are retried to the right result, without
// double counting: the same racing mix as above, with every third
// TransactWriteItems cancelled by a conflict and every fifth call of any
// kind throttled.
func TestFaultsConflictsAndThrottling(t *testing.T) {
	raceUnderFaults(t, 30, func(r *raceEnv) { raceMix(t, r, 4, 30, 2) })
}

// raceUnderFaults runs race on 8 users and a pool of 4 eco and 2 pro
// licenses, through conflictsAndThrottling's faults, then checks the
// invariants and that at least minTxs transactions were sent, so that the
// faults were exercised.
func raceUnderFaults(t *testing.T, minTxs int, race func(r *raceEnv)) {
	t.Helper()
	opt, calls := apitest.Faults(conflictsAndThrottling)
	r := newRaceEnv(t, 8, opt)
	r.MustLicenses(t, r.acct, licadmin.Eco, 4)
	r.MustLicenses(t, r.acct, licadmin.Pro, 2)
	race(r)
	r.Invariants(t)
	if n := calls.Get("TransactWriteItems"); n < minTxs {
		t.Fatalf("only %d transactions: the faults were not exercised", n)
	}
}

// TestFaultLostResponseAppliesOnce ensures that a transaction that commits
// but whose answer is lost is retried with the same ClientRequestToken and
// changes nothing the second time: one license assigned, not two, and the
// client sees success.
func TestFaultLostResponseAppliesOnce(t *testing.T) {
	opt, calls, arm := apitest.LoseNextTransaction()
	r := newRaceEnv(t, 1, opt)
	r.MustLicenses(t, r.acct, licadmin.Eco, 3)
	arm()
	resp := r.do(r.assign, routeAssign, map[string]string{"userId": r.users[0]}, nil, map[string]string{"tier": "eco"})
	resp.Want(t, http.StatusOK)
	if calls.Get("lost:TransactWriteItems") != 1 {
		t.Fatalf("the lost response was not injected: %v", calls.Snapshot())
	}
	p := r.do(r.pool, routePool, nil, nil, nil)
	var pool licadmin.Pool
	p.Decode(t, &pool)
	wantPool(t, pool, licadmin.Eco, 3, 1)
	r.Invariants(t)
}

// TestRequestsPerOperation ensures each license change costs one read and
// one write, the design the benchmark measures: the caller's claim and the
// users in one BatchGetItem, every time (the caller is never remembered),
// and a transaction of three items, with no check of the caller's claim
// (store, license.go: the read decides who may change what).
func TestRequestsPerOperation(t *testing.T) {
	opt, calls := apitest.Faults(nil)
	items, sizes := transactItems()
	r := newRaceEnv(t, 2, opt, items)
	r.MustLicenses(t, r.acct, licadmin.Eco, 2)
	r.MustLicenses(t, r.acct, licadmin.Pro, 2)
	a, b := r.users[0], r.users[1]
	steps := []struct {
		name string
		call func() *apitest.Response
	}{
		{"assign", func() *apitest.Response {
			return r.do(r.assign, routeAssign, map[string]string{"userId": a}, nil, map[string]string{"tier": "eco"})
		}},
		{"modify", func() *apitest.Response {
			return r.do(r.modify, routeModify, map[string]string{"userId": a}, nil, map[string]string{"tier": "pro"})
		}},
		{"modify again", func() *apitest.Response { // the same admin a moment later
			return r.do(r.modify, routeModify, map[string]string{"userId": a}, nil, map[string]string{"tier": "eco"})
		}},
		{"transfer", func() *apitest.Response {
			return r.do(r.transfer, routeTransfer, map[string]string{"userId": a}, nil, map[string]string{"toUserId": b})
		}},
		{"remove", func() *apitest.Response {
			return r.do(r.remove, routeRemove, map[string]string{"userId": b}, nil, nil)
		}},
	}
	for _, s := range steps {
		calls.Reset()
		before := len(sizes())
		s.call().Want(t, http.StatusOK)
		got := calls.Snapshot()
		want := map[string]int{"BatchGetItem": 1, "TransactWriteItems": 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s made %v, want %v", s.name, got, want)
		}
		if tx := sizes()[before:]; len(tx) != 1 || tx[0] != 3 {
			t.Errorf("%s sent transactions of %v items, want one of 3", s.name, tx)
		}
	}
}

// TestConcurrentSameEmail ensures rule 3 of docs/api.md under a race: ten
// creations of a user with one address and ten changes of other users'
// addresses to it, all at once, give it to exactly one user; every other
// request answers email_taken, and each address still has exactly one
// claim, its user's.
func TestConcurrentSameEmail(t *testing.T) {
	r := newRaceEnv(t, 10)
	create, update := api.CreateUser(r.App), api.UpdateUser(r.App)
	const email = "contested@race.test"
	seen := newAnswers("ok", licadmin.EEMAILTAKEN)
	apitest.Concurrently(20, func(i int) {
		if i%2 == 0 {
			seen.record(t, r, "", r.do(create, routeUsers, nil, nil, map[string]string{"email": email, "firstName": "New", "lastName": fmt.Sprint(i)}))
			return
		}
		seen.record(t, r, "", r.do(update, routeUpdateUser, map[string]string{"userId": r.users[i/2]}, nil, map[string]string{"email": email}))
	})
	seen.want(t, map[string]int{"ok": 1, licadmin.EEMAILTAKEN: 19})
	r.Invariants(t)
}
