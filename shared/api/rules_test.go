package api_test

import (
	"context"
	"errors"
	"go/ast"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/store"
)

// unknownID is a well-formed user id that no user has.
const unknownID = "01JZZZZZZZZZZZZZZZZZZZZZZZ"

// sourceIP is the client address apitest puts in every event.
const sourceIP = "198.51.100.7"

// handlerConstructors returns the names of package api's exported
// functions that return an apigw.Handler: every HTTP route's handler.
func handlerConstructors(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, file := range sourceFiles(t, "*.go") {
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if sel, ok := fn.Type.Results.List[0].Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Handler" {
				names = append(names, fn.Name.Name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestTenantIsolation ensures rule 4 for every route handler of package
// api: an admin of account B who names ids of account A gets exactly the
// answer an unknown id gets (404 not_found for users), routes without ids
// act on B's account only, and afterwards every item of account A (pool,
// users, claims, audit, orders, domains) is byte for byte what it was.
func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	// Account A is acme (f.admin), account B is globex (f.other, the caller).
	aHeld, aFree := f.user(t, "held@acme.test"), f.user(t, "free@acme.test")
	f.assign(f.admin, aHeld, "eco").Want(t, http.StatusOK)
	bAcct := f.MustCaller(t, f.other).AccountID
	f.MustLicenses(t, bAcct, licadmin.Eco, 3)
	f.MustLicenses(t, bAcct, licadmin.Pro, 1)
	bHeld, bFree := f.userAs(t, f.other, "held@globex.test", "user"), f.userAs(t, f.other, "free@globex.test", "user")
	f.assign(f.other, bHeld, "eco").Want(t, http.StatusOK)
	// Handlers the fixture does not build.
	do := func(h apigw.Handler, r apitest.Request) *apitest.Response { return apitest.Do(t, h, r) }
	updateUser, deleteUser, sendActivation := api.UpdateUser(f.App), api.DeleteUser(f.App), api.SendActivationEmail(f.App)
	createDomain, verifyDomain, deleteDomain, listDomains := api.CreateDomain(f.App), api.VerifyDomain(f.App), api.DeleteDomain(f.App), api.ListDomains(f.App)
	setAlert, activate, activationPage := api.SetAlertThreshold(f.App), api.Activate(f.App), api.ActivationPage(f.App)
	userLogs, myLogs, exportLogs, getExport := api.ListUserLogs(f.App), api.ListMyLogs(f.App), api.ExportUserLogs(f.App), api.GetExport(f.App)
	accountStats, userStats := api.GetStats(f.App), api.GetUserStats(f.App)
	bulkLicenses := api.BulkLicenses(f.App)
	// A has a log export (its job goes nowhere: only the export's record
	// matters here).
	f.App.Exports.Queue = discardQueue{}
	exp := do(exportLogs, userReq("POST /v1/users/{userId}/logs/export", f.admin, aHeld, nil))
	exp.Want(t, http.StatusAccepted)
	var aExport struct {
		ExportID string `json:"exportId"`
	}
	exp.Decode(t, &aExport)
	createImport, getImport, importTemplate := api.CreateImport(f.App), api.GetImport(f.App), api.GetImportTemplate(f.App)
	// And a CSV import waiting for its upload.
	imp := do(createImport, apitest.Request{Route: "POST /v1/imports", Email: f.admin, Body: map[string]bool{"dryRun": false}})
	imp.Want(t, http.StatusCreated)
	var aImport struct {
		ImportID string `json:"importId"`
	}
	imp.Decode(t, &aImport)
	// A also has a domain waiting for verification.
	do(createDomain, apitest.Request{Route: "POST /v1/domains", Email: f.admin, Body: map[string]string{"domain": "pending-acme.test"}}).Want(t, http.StatusCreated)

	before := accountState(t, f.Env, f.acct)
	b := f.other
	byID := []struct {
		handler string
		name    string
		aID     string
		call    func(id string) *apitest.Response
	}{
		{"GetUser", "get a user", aHeld, func(id string) *apitest.Response { return f.h.get(userReq(routeGetUser, b, id, nil)) }},
		{"AssignLicense", "assign to a user without license", aFree, func(id string) *apitest.Response { return f.assign(b, id, "eco") }},
		{"AssignLicense", "assign to a user with a license", aHeld, func(id string) *apitest.Response { return f.assign(b, id, "pro") }},
		{"ModifyLicense", "modify", aHeld, func(id string) *apitest.Response {
			return f.h.modify(userReq(routeModify, b, id, map[string]string{"tier": "pro"}))
		}},
		{"ModifyLicense", "modify to the same tier", aHeld, func(id string) *apitest.Response {
			return f.h.modify(userReq(routeModify, b, id, map[string]string{"tier": "eco"}))
		}},
		{"RemoveLicense", "remove", aHeld, func(id string) *apitest.Response { return f.h.remove(userReq(routeRemove, b, id, nil)) }},
		{"TransferLicense", "transfer from A's user to B's", aHeld, func(id string) *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, b, id, map[string]string{"toUserId": bFree}))
		}},
		{"TransferLicense", "transfer from B's user to A's", aFree, func(id string) *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, b, bHeld, map[string]string{"toUserId": id}))
		}},
		{"TransferLicense", "transfer between two users of A", aHeld, func(id string) *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, b, id, map[string]string{"toUserId": aFree}))
		}},
		{"BulkLicenses", "bulk assign to a user", aFree, func(id string) *apitest.Response {
			return do(bulkLicenses, apitest.Request{Route: routeBulk, Email: b, Body: bulkBody("assign", "eco", id)})
		}},
		{"BulkLicenses", "bulk remove, with a user of B", aHeld, func(id string) *apitest.Response {
			return do(bulkLicenses, apitest.Request{Route: routeBulk, Email: b, Body: bulkBody("remove", "", bHeld, id)})
		}},
		{"UpdateUser", "edit a user", aHeld, func(id string) *apitest.Response {
			return do(updateUser, userReq("PATCH /v1/users/{userId}", b, id, map[string]string{"firstName": "Mallory"}))
		}},
		{"UpdateUser", "edit a user with If-Match", aHeld, func(id string) *apitest.Response {
			return do(updateUser, withHeaders(userReq("PATCH /v1/users/{userId}", b, id, map[string]string{"role": "admin"}), map[string]string{"If-Match": `"2"`}))
		}},
		{"DeleteUser", "delete a user", aHeld, func(id string) *apitest.Response {
			return do(deleteUser, userReq("DELETE /v1/users/{userId}", b, id, nil))
		}},
		{"SendActivationEmail", "send an activation link", aFree, func(id string) *apitest.Response {
			return do(sendActivation, userReq("POST /v1/users/{userId}/activation-email", b, id, nil))
		}},
		{"ListUserLogs", "read a user's logs", aHeld, func(id string) *apitest.Response {
			return do(userLogs, userReq("GET /v1/users/{userId}/logs", b, id, nil))
		}},
		{"ExportUserLogs", "export a user's logs", aHeld, func(id string) *apitest.Response {
			return do(exportLogs, userReq("POST /v1/users/{userId}/logs/export", b, id, nil))
		}},
		{"GetUserStats", "read a user's statistics", aHeld, func(id string) *apitest.Response {
			return do(userStats, userReq("GET /v1/users/{userId}/stats", b, id, nil))
		}},
		{"GetExport", "read a log export", aExport.ExportID, func(id string) *apitest.Response {
			return do(getExport, apitest.Request{Route: "GET /v1/exports/{exportId}", Params: map[string]string{"exportId": id}, Email: b})
		}},
		{"GetImport", "read a CSV import", aImport.ImportID, func(id string) *apitest.Response {
			return do(getImport, apitest.Request{Route: "GET /v1/imports/{importId}", Params: map[string]string{"importId": id}, Email: b})
		}},
	}
	covered := map[string]bool{}
	for _, c := range byID {
		t.Run(c.name, func(t *testing.T) {
			covered[c.handler] = true
			unknown := c.call(unknownID)
			unknown.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
			foreign := c.call(c.aID)
			foreign.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
			wantSameAnswer(t, foreign, unknown, c.aID, unknownID)
		})
	}

	// Domains of A (approved and pending) answer like unknown domains.
	byDomain := []struct {
		handler string
		call    func(domain string) *apitest.Response
	}{
		{"VerifyDomain", func(d string) *apitest.Response {
			return do(verifyDomain, apitest.Request{Route: "POST /v1/domains/{domain}/verify", Params: map[string]string{"domain": d}, Email: b})
		}},
		{"DeleteDomain", func(d string) *apitest.Response {
			return do(deleteDomain, apitest.Request{Route: "DELETE /v1/domains/{domain}", Params: map[string]string{"domain": d}, Email: b})
		}},
	}
	for _, c := range byDomain {
		for _, d := range []string{"acme.test", "pending-acme.test"} {
			t.Run(c.handler+" "+d, func(t *testing.T) {
				covered[c.handler] = true
				unknown := c.call("unknown-domain.test")
				unknown.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
				foreign := c.call(d)
				foreign.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
				wantSameAnswer(t, foreign, unknown, d, "unknown-domain.test")
			})
		}
	}
	t.Run("request A's approved domain", func(t *testing.T) {
		covered["CreateDomain"] = true
		// A domain is approved for at most one account (rule 5): B learns
		// that, and nothing else.
		do(createDomain, apitest.Request{Route: "POST /v1/domains", Email: b, Body: map[string]string{"domain": "acme.test"}}).
			WantProblem(t, http.StatusConflict, licadmin.EDOMAINCLAIMED)
	})
	t.Run("list domains", func(t *testing.T) {
		covered["ListDomains"] = true
		r := do(listDomains, apitest.Request{Route: "GET /v1/domains", Email: b})
		r.Want(t, http.StatusOK)
		var p struct {
			Items []struct {
				Domain string `json:"domain"`
			} `json:"items"`
		}
		r.Decode(t, &p)
		for _, d := range p.Items {
			if strings.Contains(d.Domain, "acme") {
				t.Fatalf("B lists A's domain %s: %s", d.Domain, r.Body)
			}
		}
	})
	t.Run("alert threshold", func(t *testing.T) {
		covered["SetAlertThreshold"] = true
		r := do(setAlert, apitest.Request{Route: "PATCH /v1/licenses/{tier}", Params: map[string]string{"tier": "eco"}, Email: b, Body: map[string]int{"alertThreshold": 2}})
		r.Want(t, http.StatusOK)
		var p licadmin.Pool
		r.Decode(t, &p)
		if got := p.Tier(licadmin.Eco); got.AlertThreshold != 2 || got.Purchased != 3 {
			t.Fatalf("B's eco pool %+v, want its own with threshold 2", got)
		}
	})
	t.Run("account statistics and own logs", func(t *testing.T) {
		covered["GetStats"], covered["ListMyLogs"] = true, true
		for _, r := range []*apitest.Response{
			do(accountStats, apitest.Request{Route: "GET /v1/stats", Email: b}),
			do(accountStats, apitest.Request{Route: "GET /v1/stats", Email: b, Query: map[string]string{"format": "csv"}}),
			do(myLogs, apitest.Request{Route: "GET /v1/me/logs", Email: b}),
		} {
			r.Want(t, http.StatusOK)
			for _, leak := range []string{aHeld, aFree, "acme"} {
				if strings.Contains(r.Body, leak) {
					t.Fatalf("B's answer shows %q of A: %s", leak, r.Body)
				}
			}
		}
	})
	t.Run("bulk reminders", func(t *testing.T) {
		// B lists A's users: skipped as unknown ids, nothing queued; B's
		// reminder of every pending user reaches B's users only.
		covered["SendActivationEmails"], covered["GetActivationEmails"] = true, true
		send, get := api.SendActivationEmails(f.App), api.GetActivationEmails(f.App)
		r := do(send, apitest.Request{Route: "POST /v1/activation-emails", Email: b, Body: map[string]any{"userIds": []string{aHeld, aFree}}})
		r.Want(t, http.StatusAccepted)
		var rem licadmin.Reminder
		r.Decode(t, &rem)
		if rem.Queued != 0 || rem.Skipped != 2 {
			t.Fatalf("B's reminder of A's users: %+v, want both skipped", rem)
		}
		// A's reminder ids are unknown to B (TestRemindList compares them
		// with unknown ids); B reads its own.
		do(get, apitest.Request{Route: "GET /v1/activation-emails/{reminderId}", Email: b, Params: map[string]string{"reminderId": rem.ID}}).Want(t, http.StatusOK)
		q := &apitest.ExportQueue{}
		f.App.Reminders.Queue = q
		do(send, apitest.Request{Route: "POST /v1/activation-emails", Email: b, Body: map[string]bool{"allPending": true}}).Want(t, http.StatusAccepted)
		for _, j := range q.Take() {
			if _, err := f.App.Reminders.HandleSQS(apitest.AsFunction(t.Context(), "SendRemindersFunction"), apitest.SQSEvent(j)); err != nil {
				t.Fatal(err)
			}
		}
		for _, it := range f.Scan(t) {
			if o := store.OutboxFromImage(it); o != nil && o.Kind == licadmin.EmailActivation && o.AccountID == f.acct {
				t.Fatalf("B's reminders queued an email to A's user %s", o.UserID)
			}
		}
	})
	t.Run("own journal export", func(t *testing.T) {
		// B's own export is of B's caller: the job names B's account and
		// user only, and A's admin cannot read it.
		covered["ExportMyLogs"] = true
		r := do(api.ExportMyLogs(f.App), apitest.Request{Route: "POST /v1/me/logs/export", Email: b})
		r.Want(t, http.StatusAccepted)
		var x struct{ ExportID string }
		r.Decode(t, &x)
		exp, err := f.App.Store.GetExport(t.Context(), x.ExportID)
		if err != nil || exp == nil || exp.AccountID != bAcct || exp.UserID != f.MustCaller(t, b).UserID {
			t.Fatalf("B's own export %+v (%v), want B's account and user", exp, err)
		}
		do(getExport, apitest.Request{Route: "GET /v1/exports/{exportId}", Params: map[string]string{"exportId": x.ExportID}, Email: f.admin}).
			WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	})
	t.Run("imports", func(t *testing.T) {
		covered["CreateImport"], covered["GetImportTemplate"] = true, true
		// B's import is B's: its upload key names B's account only.
		r := do(createImport, apitest.Request{Route: "POST /v1/imports", Email: b})
		r.Want(t, http.StatusCreated)
		if !strings.Contains(r.Body, bAcct) || strings.Contains(r.Body, f.acct) {
			t.Fatalf("B's import does not upload under B's account: %s", r.Body)
		}
		do(importTemplate, apitest.Request{Route: "GET /v1/imports/template", Email: b}).Want(t, http.StatusOK)
		// B's list holds B's import only, never A's.
		covered["ListImports"] = true
		r = do(api.ListImports(f.App), apitest.Request{Route: "GET /v1/imports", Email: b})
		r.Want(t, http.StatusOK)
		if strings.Contains(r.Body, aImport.ImportID) || strings.Count(r.Body, `"importId"`) != 1 {
			t.Fatalf("B's imports show A's, or not B's one: %s", r.Body)
		}
	})
	t.Run("activation", func(t *testing.T) {
		// Public routes: a token is a secret of one user, not an id that
		// names an account; an unknown one changes nothing anywhere.
		covered["Activate"], covered["ActivationPage"] = true, true
		do(activate, apitest.Request{Route: "POST /v1/activations", Body: map[string]string{"token": strings.Repeat("A", 43)}}).
			WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
		do(activationPage, apitest.Request{Route: "GET /activate", Query: map[string]string{"token": strings.Repeat("A", 43)}})
	})

	// Routes without ids act on the caller's account only.
	t.Run("pool summary", func(t *testing.T) {
		covered["GetLicensePool"] = true
		r := f.h.pool(apitest.Request{Route: routePool, Email: b})
		r.Want(t, http.StatusOK)
		var p licadmin.Pool
		r.Decode(t, &p)
		wantPool(t, p, licadmin.Eco, 3, 1)
		wantPool(t, p, licadmin.Pro, 1, 0)
	})
	t.Run("delete from pool", func(t *testing.T) {
		covered["DeletePoolLicenses"] = true
		r := f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": "1"}, Email: b})
		r.Want(t, http.StatusOK)
		var p licadmin.Pool
		r.Decode(t, &p)
		wantPool(t, p, licadmin.Eco, 2, 1)
		// B has 1 free eco license and A has 1: deleting 2 must not reach
		// A's.
		f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": "2"}, Email: b}).
			WantProblem(t, http.StatusConflict, licadmin.ELICENSESINUSE)
	})
	t.Run("create user in A's domain", func(t *testing.T) {
		covered["CreateUser"] = true
		foreign := f.h.create(apitest.Request{Route: routeUsers, Email: b, Body: userBody("new@acme.test", "user")})
		foreign.WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
		unknown := f.h.create(apitest.Request{Route: routeUsers, Email: b, Body: userBody("new@unknown.test", "user")})
		wantSameAnswer(t, foreign, unknown, "acme.test", "unknown.test")
	})
	t.Run("list users", func(t *testing.T) {
		covered["ListUsers"] = true
		got := flatten(f.listAll(t, b, map[string]string{"limit": "1"}))
		want := []string{f.otherID, bHeld, bFree}
		if !slices.Equal(got, want) {
			t.Fatalf("B lists %v, want only its own %v", got, want)
		}
	})

	for _, h := range handlerConstructors(t) {
		if !covered[h] {
			t.Errorf("handler %s has no tenant isolation case: add one to TestTenantIsolation", h)
		}
	}
	wantState(t, f.Env, f.acct, before)
	// B's own license did not move either.
	if u := f.h.get(userReq(routeGetUser, b, bHeld, nil)).User(t); u.License == nil || u.License.Tier != licadmin.Eco {
		t.Fatalf("B's user lost its license: %+v", u.License)
	}
	f.Invariants(t)
}

// discardQueue is an export queue that drops every job.
type discardQueue struct{}

func (discardQueue) Send(context.Context, []byte) error { return nil }

// wantAudit fails unless exactly one audit record was added to the account
// since it had n records, and it names actor, action, target, the request's
// id and source IP, and a UTC time within [from, to].
func wantAudit(t *testing.T, env *apitest.Env, accountID string, n int, want store.Audit, from, to time.Time) {
	t.Helper()
	recs := env.AuditLog(t, accountID)
	if len(recs) != n+1 {
		t.Fatalf("%d audit records after the change, want %d: %+v", len(recs), n+1, recs)
	}
	got := recs[0]
	if got.Actor != want.Actor || got.Action != want.Action || got.Target != want.Target ||
		got.SourceIP != want.SourceIP || got.RequestID != want.RequestID || got.AccountID != accountID {
		t.Fatalf("audit record %+v, want actor %q action %q target %q sourceIp %q requestId %q",
			got, want.Actor, want.Action, want.Target, want.SourceIP, want.RequestID)
	}
	if got.At.Location() != time.UTC || got.At.Before(from) || got.At.After(to) {
		t.Fatalf("audit time %v, want a UTC time within [%v, %v]", got.At, from, to)
	}
}

// TestAuditSuccessfulChanges ensures rule 8: each successful change writes
// exactly one audit record naming the caller, the action, the target, the
// time, the source IP and API Gateway's request id.
func TestAuditSuccessfulChanges(t *testing.T) {
	f := newFixture(t)
	var u, v string
	steps := []struct {
		name   string
		do     func() *apitest.Response
		action string
		target func(r *apitest.Response) string
	}{
		{"create user", func() *apitest.Response {
			return f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("audited@acme.test", "user")})
		}, store.ActionUserCreate, func(r *apitest.Response) string { u = r.User(t).ID; return u }},
		{"assign", func() *apitest.Response { return f.assign(f.admin, u, "eco") }, store.ActionLicenseAssign, func(*apitest.Response) string { return u }},
		{"modify", func() *apitest.Response {
			return f.h.modify(userReq(routeModify, f.admin, u, map[string]string{"tier": "pro"}))
		}, store.ActionLicenseModify, func(*apitest.Response) string { return u }},
		{"create admin", func() *apitest.Response {
			return f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("other.admin@gmail.com", "admin")})
		}, store.ActionUserCreate, func(r *apitest.Response) string { v = r.User(t).ID; return v }},
		{"transfer", func() *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, f.admin, u, map[string]string{"toUserId": v}))
		}, store.ActionLicenseTransfer, func(*apitest.Response) string { return v }},
		{"remove", func() *apitest.Response { return f.h.remove(userReq(routeRemove, f.admin, v, nil)) }, store.ActionLicenseRemove, func(*apitest.Response) string { return v }},
		{"delete from pool", func() *apitest.Response {
			return f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": "2"}, Email: f.admin})
		}, store.ActionLicensesDelete, func(*apitest.Response) string { return "eco" }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			n := len(f.Env.AuditLog(t, f.acct))
			from := time.Now()
			r := s.do()
			to := time.Now()
			r.Want(t, http.StatusOK, http.StatusCreated)
			wantAudit(t, f.Env, f.acct, n, store.Audit{Actor: f.admin, Action: s.action, Target: s.target(r), SourceIP: sourceIP, RequestID: r.RequestID}, from, to)
		})
	}
	// The caller's email is recorded lower-cased, as the token's claim is.
	n := len(f.Env.AuditLog(t, f.acct))
	from := time.Now()
	r := f.h.create(apitest.Request{Route: routeUsers, Email: "ADMIN@Acme.TEST", Body: userBody("cased@acme.test", "user")})
	wantAudit(t, f.Env, f.acct, n, store.Audit{Actor: f.admin, Action: store.ActionUserCreate, Target: r.User(t).ID, SourceIP: sourceIP, RequestID: r.RequestID}, from, time.Now())
	f.Invariants(t)
}

// TestAuditExportAndReminders ensures rule 8 on the two changes that
// start work in the background: a log export writes one record
// logs.export naming the user and the export, and a list reminder one
// record user.activation_reminders naming the reminder, beside the
// user.activation_email record of each user it reminded.
func TestAuditExportAndReminders(t *testing.T) {
	t.Run("export", func(t *testing.T) {
		f := newUsageFixture(t)
		f.UseExports()
		n := len(f.Env.AuditLog(t, f.acct))
		from := time.Now()
		r := f.export(userReq(routeExport, f.admin, f.ada, nil))
		r.Want(t, http.StatusAccepted)
		var x struct{ ExportID string }
		r.Decode(t, &x)
		wantAudit(t, f.Env, f.acct, n, store.Audit{Actor: f.admin, Action: store.ActionLogsExport, Target: f.ada, SourceIP: sourceIP, RequestID: r.RequestID}, from, time.Now())
		if got := f.Env.AuditLog(t, f.acct)[0].Details["exportId"]; got != x.ExportID {
			t.Fatalf("the record names export %q, want %q", got, x.ExportID)
		}
	})
	t.Run("reminder", func(t *testing.T) {
		f := newReminderFixture(t)
		u := f.user(t, "pending@acme.test")
		n := len(f.Env.AuditLog(t, f.acct))
		r := f.remind(t, f.admin, map[string]any{"userIds": []string{u}}, nil)
		r.Want(t, http.StatusAccepted)
		var rem licadmin.Reminder
		r.Decode(t, &rem)
		recs := f.Env.AuditLog(t, f.acct)
		if len(recs) != n+2 {
			t.Fatalf("%d audit records after the reminder, want %d: %+v", len(recs), n+2, recs[:len(recs)-n])
		}
		byAction := map[string]store.Audit{}
		for _, a := range recs[:2] {
			byAction[a.Action] = a
		}
		mine, email := byAction[store.ActionActivationReminders], byAction[store.ActionActivationEmail]
		if mine.Actor != f.admin || mine.Target != rem.ID || mine.RequestID != r.RequestID || mine.Details["queued"] != "1" {
			t.Fatalf("the reminder's record %+v, want actor %s, target %s, request %s, 1 queued", mine, f.admin, rem.ID, r.RequestID)
		}
		if email.Target != u || email.Details["reminderId"] != rem.ID {
			t.Fatalf("the user's record %+v, want target %s and reminder %s", email, u, rem.ID)
		}
	})
}

// TestAuditOperatorChanges ensures rule 8 on the operator paths: creating
// an account and adding licenses each write one record with actor
// "operator" and the Lambda invocation's request id; an order applied again
// or refused writes none.
func TestAuditOperatorChanges(t *testing.T) {
	f := newFixture(t)
	invoke := func(id string) context.Context {
		return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id})
	}
	create := operator.CreateAccountHandler(f.App.Operator)
	add := operator.AddLicensesHandler(f.App.Operator)

	from := time.Now()
	out, err := create(invoke("lambda-create-1"), operator.CreateAccountInput{Name: "Initech", AdminEmail: "bill@initech.test"})
	if err != nil {
		t.Fatal(err)
	}
	wantAudit(t, f.Env, out.AccountID, 0, store.Audit{Actor: licadmin.OperatorActor, Action: store.ActionAccountCreate, Target: out.AccountID, RequestID: "lambda-create-1"}, from, time.Now())

	from = time.Now()
	order := operator.AddLicensesInput{AccountID: out.AccountID, Tier: "pro", Quantity: 5, OrderID: "PO-1"}
	if _, err := add(invoke("lambda-add-1"), order); err != nil {
		t.Fatal(err)
	}
	wantAudit(t, f.Env, out.AccountID, 1, store.Audit{Actor: licadmin.OperatorActor, Action: store.ActionLicensesAdd, Target: "pro", RequestID: "lambda-add-1"}, from, time.Now())

	if _, err := add(invoke("lambda-add-2"), order); err != nil {
		t.Fatalf("the same order again: %v", err)
	}
	conflict := order
	conflict.Quantity = 6
	if _, err := add(invoke("lambda-add-3"), conflict); licadmin.ErrorCode(err) != licadmin.EORDERCONFLICT {
		t.Fatalf("conflicting order: %v, want %s", err, licadmin.EORDERCONFLICT)
	}
	if _, err := create(invoke("lambda-create-2"), operator.CreateAccountInput{Name: "Dup", AdminEmail: "bill@initech.test"}); err == nil {
		t.Fatal("an account with a taken admin email was created")
	}
	if n := len(f.Env.AuditLog(t, out.AccountID)); n != 2 {
		t.Fatalf("%d audit records, want 2: a replayed or refused operator call wrote one", n)
	}
}

// TestAuditFailedChanges ensures that a request that changes nothing (an
// error, a same-tier no-op) writes no audit record.
func TestAuditFailedChanges(t *testing.T) {
	f := newFixture(t)
	held, free := f.user(t, "held@acme.test"), f.user(t, "free@acme.test")
	plain := "plain@acme.test"
	f.user(t, plain)
	f.assign(f.admin, held, "eco").Want(t, http.StatusOK)
	cases := []struct {
		name   string
		do     func() *apitest.Response
		status int
		code   string
	}{
		{"assign to a holder", func() *apitest.Response { return f.assign(f.admin, held, "eco") }, http.StatusConflict, licadmin.ELICENSEASSIGNED},
		{"assign an empty tier", func() *apitest.Response { return f.assign(f.admin, free, "advanced") }, http.StatusConflict, licadmin.ENOLICENSE},
		{"assign to an unknown id", func() *apitest.Response { return f.assign(f.admin, unknownID, "eco") }, http.StatusNotFound, licadmin.ENOTFOUND},
		{"assign as a plain user", func() *apitest.Response { return f.assign(plain, free, "eco") }, http.StatusForbidden, licadmin.EFORBIDDEN},
		{"assign with a bad tier", func() *apitest.Response { return f.assign(f.admin, free, "gold") }, http.StatusBadRequest, licadmin.EINVALID},
		{"modify to the same tier", func() *apitest.Response {
			return f.h.modify(userReq(routeModify, f.admin, held, map[string]string{"tier": "eco"}))
		}, http.StatusOK, ""},
		{"modify without license", func() *apitest.Response {
			return f.h.modify(userReq(routeModify, f.admin, free, map[string]string{"tier": "eco"}))
		}, http.StatusConflict, licadmin.EUSERNOLICENSE},
		{"modify to an empty tier", func() *apitest.Response {
			return f.h.modify(userReq(routeModify, f.admin, held, map[string]string{"tier": "advanced"}))
		}, http.StatusConflict, licadmin.ENOLICENSE},
		{"remove without license", func() *apitest.Response { return f.h.remove(userReq(routeRemove, f.admin, free, nil)) }, http.StatusConflict, licadmin.EUSERNOLICENSE},
		{"transfer to a holder", func() *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, f.admin, held, map[string]string{"toUserId": held}))
		}, http.StatusConflict, licadmin.ETARGETHASLICENSE},
		{"transfer without license", func() *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, f.admin, free, map[string]string{"toUserId": held}))
		}, http.StatusConflict, licadmin.EUSERNOLICENSE},
		{"delete licenses in use", func() *apitest.Response {
			return f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": "2"}, Email: f.admin})
		}, http.StatusConflict, licadmin.ELICENSESINUSE},
		{"create a taken email", func() *apitest.Response {
			return f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("HELD@acme.test", "user")})
		}, http.StatusConflict, licadmin.EEMAILTAKEN},
		{"create in an unapproved domain", func() *apitest.Response {
			return f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("x@globex.test", "user")})
		}, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
		{"create an invalid user", func() *apitest.Response {
			return f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("x", "user")})
		}, http.StatusBadRequest, licadmin.EINVALID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(f.Env.AuditLog(t, f.acct))
			r := c.do()
			if c.code == "" {
				r.Want(t, c.status)
			} else {
				r.WantProblem(t, c.status, c.code)
			}
			if got := len(f.Env.AuditLog(t, f.acct)); got != n {
				t.Fatalf("%d audit records written by a request that changed nothing", got-n)
			}
		})
	}
}

// TestIdempotencyKeyExpires ensures rule 9's window on the clock the
// functions are given: a key is remembered for 24 hours, a success
// (recorded in its change's transaction) and an error (recorded apart)
// alike; after that the same key is a new request, whatever its body.
func TestIdempotencyKeyExpires(t *testing.T) {
	f := newFixture(t)
	clock := apitest.NewClock(time.Now().UTC())
	f.App.API.Now = clock.Now
	f.App.Licenses.Now = clock.Now
	u, w := f.user(t, "u@acme.test"), f.user(t, "w@acme.test")

	f.h.assign(withHeaders(userReq(routeAssign, f.admin, u, map[string]string{"tier": "eco"}), idemKey("day-1"))).Want(t, http.StatusOK)
	refused := withHeaders(userReq(routeAssign, f.admin, w, map[string]string{"tier": "advanced"}), idemKey("day-2"))
	f.h.assign(refused).WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
	f.MustLicenses(t, f.acct, licadmin.Advanced, 1)

	clock.Advance(idem.TTL - time.Second)
	reused := withHeaders(userReq(routeAssign, f.admin, w, map[string]string{"tier": "eco"}), idemKey("day-1"))
	f.h.assign(reused).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
	if r := f.h.assign(refused); r.Headers["Idempotent-Replayed"] != "true" {
		t.Fatalf("within the day the error is replayed: %d %v %s", r.StatusCode, r.Headers, r.Body)
	}

	clock.Advance(2 * time.Second)
	if r := f.h.assign(reused); r.StatusCode != http.StatusOK || r.Headers["Idempotent-Replayed"] != "" {
		t.Fatalf("a day later the key is new: %d %v %s", r.StatusCode, r.Headers, r.Body)
	}
	// w holds eco now; the advanced assign of the same key is refused
	// afresh, not replayed.
	if r := f.h.assign(refused); r.Headers["Idempotent-Replayed"] != "" {
		t.Fatalf("a day later the error's key was replayed: %d %v %s", r.StatusCode, r.Headers, r.Body)
	}
	wantPool(t, f.pool(t), licadmin.Eco, 2, 2)
}

// TestIdempotency ensures rule 9 on every idempotent route: a retry with the
// same key and body answers the first response (status, body, headers, plus
// Idempotent-Replayed: true) and changes nothing; the same key with another
// request answers 422 idempotency_key_reused; keys belong to their caller;
// an error answer is remembered like a success.
func TestIdempotency(t *testing.T) {
	f := newFixture(t)
	admin2 := "second.admin@acme.test"
	f.userAs(t, f.admin, admin2, "admin")
	u, w, x := f.user(t, "u@acme.test"), f.user(t, "w@acme.test"), f.user(t, "x@acme.test")

	audits := func() int { return len(f.Env.AuditLog(t, f.acct)) }

	t.Run("assign", func(t *testing.T) {
		req := withHeaders(userReq(routeAssign, f.admin, u, map[string]string{"tier": "eco"}), idemKey("assign-1"))
		n := audits()
		first := f.h.assign(req)
		first.Want(t, http.StatusOK)
		again := f.h.assign(req)
		wantReplay(t, first, again)
		wantPool(t, f.pool(t), licadmin.Eco, 2, 1)
		if audits() != n+1 {
			t.Fatalf("%d audit records for one change", audits()-n)
		}
		// Same key, another body or another user: refused, nothing changes.
		other := withHeaders(userReq(routeAssign, f.admin, u, map[string]string{"tier": "pro"}), idemKey("assign-1"))
		f.h.assign(other).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
		other = withHeaders(userReq(routeAssign, f.admin, w, map[string]string{"tier": "eco"}), idemKey("assign-1"))
		f.h.assign(other).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
		// Same key on another route: another request too.
		f.h.remove(withHeaders(userReq(routeRemove, f.admin, u, nil), idemKey("assign-1"))).
			WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
		wantPool(t, f.pool(t), licadmin.Eco, 2, 1)
		if audits() != n+1 {
			t.Fatalf("refused reuses wrote audit records")
		}
		// Another admin's identical key is its own: it assigns w.
		mine := f.h.assign(withHeaders(userReq(routeAssign, admin2, w, map[string]string{"tier": "eco"}), idemKey("assign-1")))
		mine.Want(t, http.StatusOK)
		if mine.Headers["Idempotent-Replayed"] != "" || mine.User(t).ID != w {
			t.Fatalf("another admin's key was replayed: %v %s", mine.Headers, mine.Body)
		}
		wantPool(t, f.pool(t), licadmin.Eco, 2, 2)
	})

	t.Run("error replayed after the pool changed", func(t *testing.T) {
		req := withHeaders(userReq(routeAssign, f.admin, x, map[string]string{"tier": "advanced"}), idemKey("assign-2"))
		first := f.h.assign(req)
		first.WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
		f.MustLicenses(t, f.acct, licadmin.Advanced, 1)
		again := f.h.assign(req)
		again.WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
		wantReplay(t, first, again)
		wantPool(t, f.pool(t), licadmin.Advanced, 1, 0)
		// A new key is a new request.
		f.h.assign(withHeaders(userReq(routeAssign, f.admin, x, map[string]string{"tier": "advanced"}), idemKey("assign-3"))).Want(t, http.StatusOK)
		wantPool(t, f.pool(t), licadmin.Advanced, 1, 1)
	})

	t.Run("modify", func(t *testing.T) {
		n := audits()
		same := withHeaders(userReq(routeModify, f.admin, u, map[string]string{"tier": "eco"}), idemKey("modify-1"))
		first := f.h.modify(same)
		first.Want(t, http.StatusOK)
		wantReplay(t, first, f.h.modify(same))
		if audits() != n {
			t.Fatalf("a same-tier no-op wrote an audit record")
		}
		up := withHeaders(userReq(routeModify, f.admin, u, map[string]string{"tier": "pro"}), idemKey("modify-2"))
		first = f.h.modify(up)
		first.Want(t, http.StatusOK)
		wantReplay(t, first, f.h.modify(up))
		p := f.pool(t)
		wantPool(t, p, licadmin.Eco, 2, 1)
		wantPool(t, p, licadmin.Pro, 1, 1)
		if audits() != n+1 {
			t.Fatalf("%d audit records for one change", audits()-n)
		}
		f.h.modify(withHeaders(userReq(routeModify, f.admin, u, map[string]string{"tier": "eco"}), idemKey("modify-2"))).
			WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
	})

	t.Run("transfer", func(t *testing.T) {
		n := audits()
		req := withHeaders(userReq(routeTransfer, f.admin, u, map[string]string{"toUserId": f.MustCaller(t, admin2).UserID}), idemKey("transfer-1"))
		first := f.h.transfer(req)
		first.Want(t, http.StatusOK)
		wantReplay(t, first, f.h.transfer(req))
		if audits() != n+1 {
			t.Fatalf("%d audit records for one change", audits()-n)
		}
		wantPool(t, f.pool(t), licadmin.Pro, 1, 1)
		if got := f.h.get(userReq(routeGetUser, f.admin, u, nil)).User(t); got.License != nil {
			t.Fatalf("the former holder has %+v after a replayed transfer", got.License)
		}
	})

	t.Run("remove", func(t *testing.T) {
		n := audits()
		req := withHeaders(userReq(routeRemove, f.admin, w, nil), idemKey("remove-1"))
		first := f.h.remove(req)
		first.Want(t, http.StatusOK)
		gen := f.LogGeneration(t, w)
		again := f.h.remove(req)
		wantReplay(t, first, again)
		wantPool(t, f.pool(t), licadmin.Eco, 2, 0)
		if audits() != n+1 || f.LogGeneration(t, w) != gen {
			t.Fatalf("the replayed remove changed something: %d audit records, log generation %d -> %d", audits()-n, gen, f.LogGeneration(t, w))
		}
	})

	t.Run("delete from pool", func(t *testing.T) {
		n := audits()
		del := func(q, key string) *apitest.Response {
			return f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": q}, Email: f.admin, Headers: idemKey(key)})
		}
		first := del("1", "delete-1")
		first.Want(t, http.StatusOK)
		wantReplay(t, first, del("1", "delete-1"))
		wantPool(t, f.pool(t), licadmin.Eco, 1, 0)
		// The quantity is part of the request.
		del("2", "delete-1").WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
		wantPool(t, f.pool(t), licadmin.Eco, 1, 0)
		if audits() != n+1 {
			t.Fatalf("%d audit records for one change", audits()-n)
		}
	})

	t.Run("create user", func(t *testing.T) {
		n := audits()
		req := apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("idem@acme.test", "user"), Headers: idemKey("create-1")}
		first := f.h.create(req)
		first.Want(t, http.StatusCreated)
		again := f.h.create(req)
		wantReplay(t, first, again)
		if again.Headers["Location"] == "" || again.Headers["ETag"] == "" {
			t.Fatalf("the replayed 201 lost its Location or ETag: %v", again.Headers)
		}
		other := req
		other.Body = userBody("idem2@acme.test", "user")
		f.h.create(other).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
		if audits() != n+1 {
			t.Fatalf("%d audit records for one creation", audits()-n)
		}
		var count int
		for _, id := range flatten(f.listAll(t, f.admin, nil)) {
			if id == first.User(t).ID {
				count++
			}
		}
		if count != 1 || len(flatten(f.listAll(t, f.admin, nil))) != 6 {
			t.Fatalf("the replay created another user")
		}
		// An error (the email is now taken) is remembered under its key too.
		taken := apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("idem@acme.test", "user"), Headers: idemKey("create-2")}
		e1 := f.h.create(taken)
		e1.WantProblem(t, http.StatusConflict, licadmin.EEMAILTAKEN)
		wantReplay(t, e1, f.h.create(taken))
	})

	t.Run("invalid keys", func(t *testing.T) {
		for _, k := range []string{strings.Repeat("k", 256), "tab\tkey", "é"} {
			f.h.assign(withHeaders(userReq(routeAssign, f.admin, x, map[string]string{"tier": "eco"}), idemKey(k))).
				WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
		}
	})
	f.Invariants(t)
}

// TestIdempotencyConcurrentDuplicates ensures that ten identical requests
// (same key, same body) racing each other apply the change once: the pool
// moves by one, one audit record is written, and every answer is the same
// 200 body, or 409 idempotency_key_in_progress for a duplicate that found
// the first still running (acceptable, never observed on DynamoDB Local).
func TestIdempotencyConcurrentDuplicates(t *testing.T) {
	for round := range 3 {
		f := newFixture(t)
		u := f.user(t, "racer@acme.test")
		n := len(f.Env.AuditLog(t, f.acct))
		req := withHeaders(userReq(routeAssign, f.admin, u, map[string]string{"tier": "eco"}), idemKey("race"))
		const workers = 10
		answers := make([]*apitest.Response, workers)
		apitest.Concurrently(workers, func(i int) { answers[i] = f.h.assign(req) })

		var ok, inProgress, replayed int
		var body string
		for _, a := range answers {
			switch {
			case a.StatusCode == http.StatusOK:
				ok++
				if body == "" {
					body = a.Body
				} else if a.Body != body {
					t.Fatalf("round %d: two different 200 bodies:\n%s\n%s", round, body, a.Body)
				}
				if a.Headers["Idempotent-Replayed"] == "true" {
					replayed++
				}
			case a.StatusCode == http.StatusConflict && strings.Contains(a.Body, licadmin.EIDEMINPROGRESS):
				a.WantProblem(t, http.StatusConflict, licadmin.EIDEMINPROGRESS)
				inProgress++
			default:
				t.Fatalf("round %d: unexpected answer %d %s", round, a.StatusCode, a.Body)
			}
		}
		t.Logf("round %d: %d answers 200 (%d of them replays), %d answers 409 %s", round, ok, replayed, inProgress, licadmin.EIDEMINPROGRESS)
		if ok == 0 || replayed != ok-1 {
			t.Fatalf("round %d: %d successes of which %d replays, want exactly one original", round, ok, replayed)
		}
		wantPool(t, f.pool(t), licadmin.Eco, 2, 1)
		if got := len(f.Env.AuditLog(t, f.acct)); got != n+1 {
			t.Fatalf("round %d: %d audit records for one change", round, got-n)
		}
		f.Invariants(t)
	}
}

// leakedDetail is the text of the injected DynamoDB failure: none of it may
// reach a client.
const leakedDetail = "AccessDeniedException: arn:aws:dynamodb:eu-west-3:123456789012:table/secret-table"

// failingOps names the DynamoDB operations that fail, none at first.
type failingOps struct{ ops atomic.Pointer[[]string] }

// set makes the named operations fail from now on (none: stop failing).
func (f *failingOps) set(ops ...string) { f.ops.Store(&ops) }

func (f *failingOps) has(op string) bool {
	p := f.ops.Load()
	return p != nil && slices.Contains(*p, op)
}

// failingDynamoDB returns a client option whose calls of the operations
// that f names fail with leakedDetail, as the SDK reports a service error.
func failingDynamoDB(f *failingOps) func(*dynamodb.Options) {
	mw := middleware.FinalizeMiddlewareFunc("failForRulesTest", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if f.has(middleware.GetOperationName(ctx)) {
			return middleware.FinalizeOutput{}, middleware.Metadata{}, errors.New(leakedDetail)
		}
		return next.HandleFinalize(ctx, in)
	})
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Finalize.Add(mw, middleware.After) })
	}
}

// TestInternalErrorsLeakNothing ensures rule 10 for failures of the
// platform: a DynamoDB error answers 500 problem+json with code "internal"
// and a generic detail that carries nothing of the underlying error, the
// request id to quote, and such an answer is not remembered under an
// Idempotency-Key, so that the client's retry can succeed.
func TestInternalErrorsLeakNothing(t *testing.T) {
	var failing failingOps
	env := apitest.New(t, failingDynamoDB(&failing))
	admin := "admin@acme.test"
	acct, _ := env.MustAccount(t, "Acme", admin)
	env.MustLicenses(t, acct, licadmin.Eco, 1)
	create, assign, get, list, pool := api.CreateUser(env.App), api.AssignLicense(env.App), api.GetUser(env.App), api.ListUsers(env.App), api.GetLicensePool(env.App)
	u := apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: admin, Body: userBody("u@acme.test", "user")}).User(t).ID

	type answer struct {
		name string
		r    *apitest.Response
	}
	// Writes fail: the transaction of a change.
	failing.set("TransactWriteItems")
	cases := []answer{
		{"assign with a key, write fails", apitest.Do(t, assign, withHeaders(userReq(routeAssign, admin, u, map[string]string{"tier": "eco"}), idemKey("k-500")))},
		{"create, write fails", apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: admin, Body: userBody("v@acme.test", "user")})},
	}
	// Reads fail: the caller, the users, the pool.
	failing.set("BatchGetItem", "GetItem", "Query")
	cases = append(cases,
		answer{"assign, read fails", apitest.Do(t, assign, userReq(routeAssign, admin, u, map[string]string{"tier": "eco"}))},
		answer{"get", apitest.Do(t, get, userReq(routeGetUser, admin, u, nil))},
		answer{"list", apitest.Do(t, list, apitest.Request{Route: routeList, Email: admin})},
		answer{"pool", apitest.Do(t, pool, apitest.Request{Route: routePool, Email: admin})},
	)
	failing.set("Query")
	cases = append(cases, answer{"list, query fails", apitest.Do(t, list, apitest.Request{Route: routeList, Email: admin})})
	failing.set()
	generic := licadmin.ErrorMessage(errors.New(leakedDetail))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.r.WantProblem(t, http.StatusInternalServerError, licadmin.EINTERNAL)
			if p.Detail != generic || p.RequestID != c.r.RequestID || p.Errors != nil {
				t.Fatalf("problem %+v, want the generic detail %q and request id %s", p, generic, c.r.RequestID)
			}
			for _, leak := range []string{"AccessDenied", "arn:", "secret-table", env.Table, "dynamodb", "DynamoDB", "TransactWriteItems", "BatchGetItem"} {
				if strings.Contains(c.r.Body, leak) {
					t.Fatalf("the 500 body leaks %q: %s", leak, c.r.Body)
				}
			}
		})
	}
	// The failed keyed request was not remembered: its retry applies.
	again := apitest.Do(t, assign, withHeaders(userReq(routeAssign, admin, u, map[string]string{"tier": "eco"}), idemKey("k-500")))
	again.Want(t, http.StatusOK)
	if again.Headers["Idempotent-Replayed"] != "" {
		t.Fatalf("a 500 was replayed: %v", again.Headers)
	}
	env.Invariants(t)
}

// interleave returns a client option that runs hook once, just before the
// first TransactWriteItems sent after arm is set: the hook's own change
// commits between the read that planned the request and its transaction.
func interleave(arm *atomic.Bool, hook func()) func(*dynamodb.Options) {
	mw := middleware.FinalizeMiddlewareFunc("interleaveForRulesTest", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if middleware.GetOperationName(ctx) == "TransactWriteItems" && arm.CompareAndSwap(true, false) {
			hook()
		}
		return next.HandleFinalize(ctx, in)
	})
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Finalize.Add(mw, middleware.After) })
	}
}

// TestStaleReadAnswersFreshState ensures that a request whose read was made
// stale by a concurrent change of the same user answers from the fresh
// state (the change is planned again), never 500 nor an error that is a
// mere consequence of the other change: a remove racing a remove of the
// same user answers 409 user_has_no_license, not "assigned counter is
// already zero" as an internal error.
func TestStaleReadAnswersFreshState(t *testing.T) {
	cases := []struct {
		name   string
		setup  string // tier the user holds first
		racer  func(h staleHandlers, admin, u string) *apitest.Response
		req    func(h staleHandlers, admin, u string) *apitest.Response
		status int
		code   string
	}{
		{"remove racing a remove", "pro",
			func(h staleHandlers, admin, u string) *apitest.Response {
				return apitest.Do(t, h.remove, userReq(routeRemove, admin, u, nil))
			},
			func(h staleHandlers, admin, u string) *apitest.Response {
				return apitest.Do(t, h.remove, userReq(routeRemove, admin, u, nil))
			},
			http.StatusConflict, licadmin.EUSERNOLICENSE},
		{"modify racing a remove", "eco",
			func(h staleHandlers, admin, u string) *apitest.Response {
				return apitest.Do(t, h.remove, userReq(routeRemove, admin, u, nil))
			},
			func(h staleHandlers, admin, u string) *apitest.Response {
				return apitest.Do(t, h.modify, userReq(routeModify, admin, u, map[string]string{"tier": "pro"}))
			},
			http.StatusConflict, licadmin.EUSERNOLICENSE},
		{"assign racing an assign", "",
			func(h staleHandlers, admin, u string) *apitest.Response {
				return apitest.Do(t, h.assign, userReq(routeAssign, admin, u, map[string]string{"tier": "pro"}))
			},
			func(h staleHandlers, admin, u string) *apitest.Response {
				return apitest.Do(t, h.assign, userReq(routeAssign, admin, u, map[string]string{"tier": "pro"}))
			},
			http.StatusConflict, licadmin.ELICENSEASSIGNED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var arm atomic.Bool
			var hook func()
			env := apitest.New(t, interleave(&arm, func() { hook() }))
			admin := "admin@acme.test"
			acct, _ := env.MustAccount(t, "Acme", admin)
			env.MustLicenses(t, acct, licadmin.Eco, 1)
			env.MustLicenses(t, acct, licadmin.Pro, 1)
			h := staleHandlers{assign: api.AssignLicense(env.App), modify: api.ModifyLicense(env.App), remove: api.RemoveLicense(env.App)}
			u := apitest.Do(t, api.CreateUser(env.App), apitest.Request{Route: routeUsers, Email: admin, Body: userBody("u@acme.test", "user")}).User(t).ID
			if c.setup != "" {
				apitest.Do(t, h.assign, userReq(routeAssign, admin, u, map[string]string{"tier": c.setup})).Want(t, http.StatusOK)
			}
			var raced *apitest.Response
			hook = func() { raced = c.racer(h, admin, u) }
			arm.Store(true)
			r := c.req(h, admin, u)
			if raced == nil {
				t.Fatal("the racing change did not run")
			}
			raced.Want(t, http.StatusOK)
			r.WantProblem(t, c.status, c.code)
			env.Invariants(t)
		})
	}
}

// staleHandlers are the license handlers of one TestStaleReadAnswersFreshState env.
type staleHandlers struct{ assign, modify, remove apigw.Handler }

// TestOperatorAddLicenses ensures the billing path: an order id applies
// once, the same id with another content is order_conflict, an unknown
// account is not_found, and refusals write nothing.
func TestOperatorAddLicenses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	add := func(in operator.AddLicensesInput) (*licadmin.Pool, error) { return f.App.Operator.AddLicenses(ctx, in) }
	order := operator.AddLicensesInput{AccountID: f.acct, Tier: "advanced", Quantity: 3, OrderID: "ORD-42"}
	for i := range 2 {
		p, err := add(order)
		if err != nil {
			t.Fatalf("add #%d: %v", i+1, err)
		}
		wantPool(t, *p, licadmin.Advanced, 3, 0)
	}
	n := len(f.Env.AuditLog(t, f.acct))
	before := len(f.Scan(t))
	cases := []struct {
		name string
		in   operator.AddLicensesInput
		code string
	}{
		{"same order, other quantity", operator.AddLicensesInput{AccountID: f.acct, Tier: "advanced", Quantity: 4, OrderID: "ORD-42"}, licadmin.EORDERCONFLICT},
		{"same order, other tier", operator.AddLicensesInput{AccountID: f.acct, Tier: "pro", Quantity: 3, OrderID: "ORD-42"}, licadmin.EORDERCONFLICT},
		{"unknown account", operator.AddLicensesInput{AccountID: "01NOSUCHACCOUNT", Tier: "eco", Quantity: 1, OrderID: "ORD-43"}, licadmin.ENOTFOUND},
		{"unknown tier", operator.AddLicensesInput{AccountID: f.acct, Tier: "gold", Quantity: 1, OrderID: "ORD-44"}, licadmin.EINVALID},
		{"zero quantity", operator.AddLicensesInput{AccountID: f.acct, Tier: "eco", Quantity: 0, OrderID: "ORD-45"}, licadmin.EINVALID},
		{"no order id", operator.AddLicensesInput{AccountID: f.acct, Tier: "eco", Quantity: 1}, licadmin.EINVALID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := add(c.in); licadmin.ErrorCode(err) != c.code {
				t.Fatalf("error %v, want code %s", err, c.code)
			}
		})
	}
	if after := len(f.Scan(t)); after != before {
		t.Fatalf("refused orders wrote %d items", after-before)
	}
	if got := len(f.Env.AuditLog(t, f.acct)); got != n {
		t.Fatalf("refused orders wrote %d audit records", got-n)
	}
	p := f.pool(t)
	wantPool(t, p, licadmin.Advanced, 3, 0)
	wantPool(t, p, licadmin.Eco, 2, 0)
	// A new order adds again.
	order.OrderID = "ORD-46"
	if p, err := add(order); err != nil {
		t.Fatal(err)
	} else {
		wantPool(t, *p, licadmin.Advanced, 6, 0)
	}
	f.Invariants(t)
}

// TestOperatorCreateAccount ensures account creation: the admin's domain
// is approved for the new account and refused when another account holds
// it (domain_claimed); a taken admin email is email_taken; a public webmail
// admin works and approves no domain; a refusal writes nothing.
func TestOperatorCreateAccount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	create := func(name, email string) (*operator.CreateAccountOutput, error) {
		return f.App.Operator.CreateAccount(ctx, operator.CreateAccountInput{Name: name, AdminEmail: email})
	}
	// A webmail user of acme, to take an email without claiming a domain.
	f.userAs(t, f.admin, "taken@gmail.com", "user")

	before := len(f.Scan(t))
	cases := []struct {
		name, email string
		codes       []string
	}{
		{"domain approved for another account", "ceo@acme.test", []string{licadmin.EDOMAINCLAIMED}},
		{"domain approved for another account, other case", "CEO@Globex.Test", []string{licadmin.EDOMAINCLAIMED}},
		{"webmail email taken", "taken@gmail.com", []string{licadmin.EEMAILTAKEN}},
		{"webmail email taken, other case", "Taken@GMail.com", []string{licadmin.EEMAILTAKEN}},
		// Both rules fail: either code is a correct answer.
		{"email and domain of another account", f.admin, []string{licadmin.EDOMAINCLAIMED, licadmin.EEMAILTAKEN}},
		{"invalid email", "not-an-email", []string{licadmin.EINVALID}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := create("Newco", c.email); !slices.Contains(c.codes, licadmin.ErrorCode(err)) {
				t.Fatalf("error %v, want one of %v", err, c.codes)
			}
		})
	}
	if _, err := create("", "x@newco.test"); licadmin.ErrorCode(err) != licadmin.EINVALID {
		t.Fatalf("empty name: %v, want %s", err, licadmin.EINVALID)
	}
	if after := len(f.Scan(t)); after != before {
		t.Fatalf("refused accounts wrote %d items", after-before)
	}

	// A gmail.com admin: the account exists, the admin can sign in as an
	// admin, and gmail.com is claimed by no one.
	out, err := create("Solo", "Solo.Founder@gmail.com")
	if err != nil {
		t.Fatalf("gmail admin: %v", err)
	}
	for _, it := range f.Scan(t) {
		if pk := avString(it["pk"]); pk == "DOMAIN#gmail.com" || strings.HasPrefix(avString(it["sk"]), "DOMAIN#") && pk == "ACCT#"+out.AccountID {
			t.Fatalf("a webmail domain was approved: %s %s", pk, avString(it["sk"]))
		}
	}
	r := f.h.pool(apitest.Request{Route: routePool, Email: "solo.founder@gmail.com"})
	r.Want(t, http.StatusOK)
	// Its admin adds other webmail users, and nobody else's domain.
	f.userAs(t, "solo.founder@gmail.com", "friend@gmail.com", "user")
	f.h.create(apitest.Request{Route: routeUsers, Email: "solo.founder@gmail.com", Body: userBody("x@acme.test", "user")}).
		WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
	// Another gmail admin can found another account: gmail.com is nobody's.
	if _, err := create("Solo 2", "second.founder@gmail.com"); err != nil {
		t.Fatalf("second gmail admin: %v", err)
	}
	// A new corporate admin's domain is approved for its account only.
	nc, err := create("Newco", "boss@newco.test")
	if err != nil {
		t.Fatal(err)
	}
	f.userAs(t, "boss@newco.test", "staff@newco.test", "user")
	f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("spy@newco.test", "user")}).
		WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
	if recs := f.Env.AuditLog(t, nc.AccountID); len(recs) != 2 {
		t.Fatalf("%d audit records for account creation and one user, want 2", len(recs))
	}
	f.Invariants(t)
}

// TestOperatorCreateAccountAgain ensures an account creation sent again
// (an operator who lost the answer) answers the account created first,
// with the same ids, and writes nothing, for an admin on a corporate
// domain (whose domain claim fails first) and on webmail; the same admin
// with another account name is still refused.
func TestOperatorCreateAccountAgain(t *testing.T) {
	f := newFixture(t)
	// As the function: its policy must allow the read of the replay.
	ctx := apitest.AsFunction(context.Background(), "CreateAccountFunction")
	create := func(name, email string) (*operator.CreateAccountOutput, error) {
		return f.App.Operator.CreateAccount(ctx, operator.CreateAccountInput{Name: name, AdminEmail: email})
	}
	for _, email := range []string{"boss@retry.test", "founder@gmail.com"} {
		first, err := create("Retry Co", email)
		if err != nil {
			t.Fatal(err)
		}
		before := len(f.Scan(t))
		again, err := create("Retry Co", strings.ToUpper(email))
		if err != nil || *again != *first {
			t.Fatalf("%s again: %+v, %v; want %+v", email, again, err, first)
		}
		if n := len(f.Scan(t)); n != before {
			t.Fatalf("%s again wrote %d items", email, n-before)
		}
		if _, err := create("Other Co", email); licadmin.ErrorCode(err) != licadmin.EEMAILTAKEN && licadmin.ErrorCode(err) != licadmin.EDOMAINCLAIMED {
			t.Fatalf("%s with another name: %v, want email_taken or domain_claimed", email, err)
		}
		if recs := f.Env.AuditLog(t, first.AccountID); len(recs) != 1 {
			t.Fatalf("%d audit records of the account, want its creation's", len(recs))
		}
	}
	f.Invariants(t)
}
