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
