package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

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

func (f *fixture) modify(email, id, tier string) *apitest.Response {
	return f.h.modify(apitest.Request{Route: routeModify, Params: map[string]string{"userId": id}, Email: email, Body: map[string]string{"tier": tier}})
}

func (f *fixture) transfer(email, id, to string) *apitest.Response {
	return f.h.transfer(apitest.Request{Route: routeTransfer, Params: map[string]string{"userId": id}, Email: email, Body: map[string]string{"toUserId": to}})
}

func (f *fixture) remove(email, id string) *apitest.Response {
	return f.h.remove(apitest.Request{Route: routeRemove, Params: map[string]string{"userId": id}, Email: email})
}

// TestRememberedAdminList ensures that the user list, which starts the
// page's Query for the account an admin was remembered in while it checks
// the caller's claim again, never returns that page on the memory alone:
// an admin demoted within the memory's lifetime gets 403 and no users, and
// an admin whose claim now names another account gets that account's
// users only, with and without a search; the early Query is sent (the
// memory was used) and its page dropped.
func TestRememberedAdminList(t *testing.T) {
	f := newXFixture(t)
	// The claim's read is slow in the requests checked below, so that the
	// early Query is surely sent before the check ends.
	var slowClaim atomic.Bool
	opt, calls := apitest.Faults(func(op string, _ int) apitest.Fault {
		if slowClaim.Load() && (op == "GetItem" || op == "BatchGetItem") {
			time.Sleep(100 * time.Millisecond)
		}
		return apitest.NoFault
	})
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	boss := "boss@acme.test"
	bossID := f.user(t, boss)
	f.patch(f.admin, bossID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)
	f.user(t, "jan@acme.test")
	f.DeliverUsageStream(t)
	adminID := f.MustCaller(t, f.admin).UserID
	otherAcct := f.MustCaller(t, f.other).AccountID
	for _, query := range []map[string]string{nil, {"q": "jan"}} {
		// Remembered, then demoted.
		f.patch(boss, adminID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)
		f.listPage(t, f.admin, copyQuery(query))
		calls.Reset()
		f.listPage(t, f.admin, copyQuery(query))
		if calls.Get("Query") != 1 || calls.Get("BatchGetItem")+calls.Get("GetItem") != 1 {
			t.Fatalf("%v: a remembered admin's page sent %d Queries and %d claim reads, want 1 and 1", query, calls.Get("Query"), calls.Get("BatchGetItem")+calls.Get("GetItem"))
		}
		f.patch(boss, adminID, `{"role":"user"}`, nil).Want(t, http.StatusOK)
		calls.Reset()
		slowClaim.Store(true)
		r := f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: copyQuery(query)})
		slowClaim.Store(false)
		r.WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
		if strings.Contains(string(r.Body), "@acme.test") {
			t.Fatalf("%v: the demoted admin's 403 holds users: %s", query, r.Body)
		}
		if calls.Get("Query") != 1 {
			t.Fatalf("%v: %d Queries, want the early one (the memory was not used)", query, calls.Get("Query"))
		}
	}

	// Remembered, then its claim names an admin of the other account.
	f.patch(boss, adminID, `{"role":"admin"}`, nil).Want(t, http.StatusOK)
	acct := f.MustCaller(t, f.admin).AccountID
	moveClaim := func(to string) {
		t.Helper()
		_, err := f.App.DynamoDB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
			TableName:                 &f.Table,
			Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "EMAIL#" + f.admin}, "sk": &types.AttributeValueMemberS{Value: "EMAIL"}},
			UpdateExpression:          aws.String("SET accountId = :a"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":a": &types.AttributeValueMemberS{Value: to}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, query := range []map[string]string{nil, {"q": "jan"}} {
		moveClaim(acct)
		f.listPage(t, f.admin, copyQuery(query)) // remembered
		moveClaim(otherAcct)
		calls.Reset()
		slowClaim.Store(true)
		p := f.listPage(t, f.admin, copyQuery(query))
		slowClaim.Store(false)
		for _, u := range p.Items {
			if strings.HasSuffix(u.Email, "@acme.test") {
				t.Fatalf("%v: the moved admin sees %s of the account it left", query, u.Email)
			}
		}
		if query == nil && len(p.Items) == 0 {
			t.Fatal("the moved admin sees no user of its new account")
		}
		if calls.Get("Query") != 2 {
			t.Fatalf("%v: %d Queries, want the early one, dropped, and its new account's", query, calls.Get("Query"))
		}
	}
}
