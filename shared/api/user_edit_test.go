package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

const (
	routeUpdateUser = "PATCH /v1/users/{userId}"
	routeDeleteUser = "DELETE /v1/users/{userId}"
)

// xfixture is the fixture of license_test.go with the handlers of user
// edits and domains.
type xfixture struct {
	*fixture
	update, deleteUser                                    func(apitest.Request) *apitest.Response
	requestDomain, verify, listDomains, deleteDomain      func(apitest.Request) *apitest.Response
	editHandler, deleteHandler, verifyHandler, reqHandler apigw.Handler
}

func newXFixture(t *testing.T) *xfixture {
	t.Helper()
	return extend(t, newFixture(t))
}

func extend(t *testing.T, f *fixture) *xfixture {
	t.Helper()
	a := f.App
	x := &xfixture{fixture: f,
		editHandler: api.UpdateUser(a), deleteHandler: api.DeleteUser(a), verifyHandler: api.VerifyDomain(a), reqHandler: api.CreateDomain(a)}
	call := func(h apigw.Handler) func(apitest.Request) *apitest.Response {
		return func(r apitest.Request) *apitest.Response { return apitest.Do(t, h, r) }
	}
	x.update, x.deleteUser = call(x.editHandler), call(x.deleteHandler)
	x.requestDomain, x.verify = call(x.reqHandler), call(x.verifyHandler)
	x.listDomains, x.deleteDomain = call(api.ListDomains(a)), call(api.DeleteDomain(a))
	return x
}

// patch sends PATCH /v1/users/{id} as caller with body and headers.
func (f *xfixture) patch(caller, id string, body any, headers map[string]string) *apitest.Response {
	return f.update(withHeaders(userReq(routeUpdateUser, caller, id, body), headers))
}

// getUser returns a user as f.admin reads it, and its ETag.
func (f *xfixture) getUser(t *testing.T, id string) (*licadmin.User, string) {
	t.Helper()
	r := f.h.get(userReq(routeGetUser, f.admin, id, nil))
	return r.User(t), r.Headers["ETag"]
}

// etagOf is the ETag of version v.
func etagOf(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// wantNothingWritten fails unless the table has exactly the items it had
// (count) and the account no more audit records than audits.
func wantNothingWritten(t *testing.T, env *apitest.Env, accountID string, items, audits int) {
	t.Helper()
	if got := len(env.Scan(t)); got != items {
		t.Fatalf("a refused request wrote %d items", got-items)
	}
	if got := len(env.AuditLog(t, accountID)); got != audits {
		t.Fatalf("a refused request wrote %d audit records", got-audits)
	}
}

// TestUpdateUserFields ensures each editable field changes alone or with
// others: the answer is the edited user with the next ETag, GET agrees,
// updatedAt moves and createdAt does not, an edit writes one audit record
// naming the changed fields, and an edit that changes nothing answers the
// user as it is and writes nothing.
func TestUpdateUserFields(t *testing.T) {
	f := newXFixture(t)
	id := f.user(t, "u@acme.test")
	cases := []struct {
		name   string
		body   string
		fields string // the audit record's "fields"
		check  func(u *licadmin.User) bool
	}{
		{"first name, trimmed", `{"firstName":"  Grace "}`, "firstName", func(u *licadmin.User) bool { return u.FirstName == "Grace" }},
		{"last name", `{"lastName":"Hopper"}`, "lastName", func(u *licadmin.User) bool { return u.LastName == "Hopper" }},
		{"language", `{"language":"fr"}`, "language", func(u *licadmin.User) bool { return u.Language == "fr" }},
		{"mobile as typed", `{"mobile":"+33 6.12-34 (56) 78"}`, "mobile", func(u *licadmin.User) bool { return u.Mobile != nil && *u.Mobile == "+33612345678" }},
		{"time zone", `{"timeZone":"Europe/Paris"}`, "timeZone", func(u *licadmin.User) bool { return u.TimeZone != nil && *u.TimeZone == "Europe/Paris" }},
		{"deep time zone", `{"timeZone":"America/Argentina/Buenos_Aires"}`, "timeZone", func(u *licadmin.User) bool {
			return u.TimeZone != nil && *u.TimeZone == "America/Argentina/Buenos_Aires"
		}},
		{"portal 2FA", `{"security":{"portal2fa":true}}`, "portal2fa", func(u *licadmin.User) bool {
			return u.Security == licadmin.Security{Portal2FA: true, ProtectedReplies: "none"}
		}},
		{"mobile and time zone cleared with null", `{"mobile":null,"timeZone":null}`, "mobile,timeZone", func(u *licadmin.User) bool { return u.Mobile == nil && u.TimeZone == nil }},
		{"several at once", `{"firstName":"Ada","lastName":"Byron","language":"en","mobile":"+14155550100","timeZone":"UTC","security":{"portal2fa":false}}`,
			"firstName,language,lastName,mobile,portal2fa,timeZone", func(u *licadmin.User) bool {
				return u.FirstName == "Ada" && u.LastName == "Byron" && u.Language == "en" && *u.Mobile == "+14155550100" && *u.TimeZone == "UTC" && !u.Security.Portal2FA
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, tag := f.getUser(t, id)
			n := len(f.Env.AuditLog(t, f.acct))
			r := f.patch(f.admin, id, c.body, nil)
			got := r.User(t)
			if !c.check(got) {
				t.Fatalf("user after %s: %+v", c.body, got)
			}
			if r.Headers["ETag"] != etagOf(mustVersion(t, tag)+1) {
				t.Fatalf("ETag %s after %s, want the next version of %s", r.Headers["ETag"], tag, tag)
			}
			g := f.h.get(userReq(routeGetUser, f.admin, id, nil))
			if g.Body != r.Body || g.Headers["ETag"] != r.Headers["ETag"] {
				t.Fatalf("GET answers %s %s, PATCH answered %s %s", g.Body, g.Headers["ETag"], r.Body, r.Headers["ETag"])
			}
			if !got.CreatedAt.Equal(before.CreatedAt) || !got.UpdatedAt.After(before.UpdatedAt) {
				t.Fatalf("createdAt %v -> %v, updatedAt %v -> %v", before.CreatedAt, got.CreatedAt, before.UpdatedAt, got.UpdatedAt)
			}
			recs := f.Env.AuditLog(t, f.acct)
			if len(recs) != n+1 || recs[0].Action != store.ActionUserUpdate || recs[0].Target != id || recs[0].Actor != f.admin ||
				recs[0].Details["fields"] != c.fields || recs[0].RequestID != r.RequestID || recs[0].SourceIP != sourceIP {
				t.Fatalf("audit %+v, want one user.update of %s with fields %q", recs[:len(recs)-n], id, c.fields)
			}
		})
	}
	t.Run("no change", func(t *testing.T) {
		u, tag := f.getUser(t, id)
		items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
		for _, body := range []any{`{}`, map[string]any{"firstName": u.FirstName, "timeZone": *u.TimeZone, "email": strings.ToUpper(u.Email), "role": "user"}} {
			r := f.patch(f.admin, id, body, nil)
			if got := r.User(t); r.Headers["ETag"] != tag || !got.UpdatedAt.Equal(u.UpdatedAt) {
				t.Fatalf("a no-op PATCH %v changed the user: ETag %s -> %s", body, tag, r.Headers["ETag"])
			}
		}
		wantNothingWritten(t, f.Env, f.acct, items, audits)
	})
	f.Invariants(t)
}

func mustVersion(t *testing.T, etag string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.Trim(etag, `"`), 10, 64)
	if err != nil {
		t.Fatalf("ETag %q is not a version", etag)
	}
	return v
}

// TestUpdateUserValidation ensures that bad input answers 400 problem+json
// naming each offending field (null for a field that cannot be cleared
// included), and writes nothing.
func TestUpdateUserValidation(t *testing.T) {
	f := newXFixture(t)
	id := f.user(t, "u@acme.test")
	cases := []struct {
		name   string
		body   string
		fields []string // nil: the problem names no field
	}{
		{"mobile without country code", `{"mobile":"06 12 34 56 78"}`, []string{"mobile:invalid_mobile"}},
		{"mobile with 00 prefix", `{"mobile":"0033612345678"}`, []string{"mobile:invalid_mobile"}},
		{"mobile country code 0", `{"mobile":"+0612345678"}`, []string{"mobile:invalid_mobile"}},
		{"mobile with letters", `{"mobile":"+33 6 CALL ME"}`, []string{"mobile:invalid_mobile"}},
		{"mobile too short", `{"mobile":"+3312"}`, []string{"mobile:invalid_mobile"}},
		{"mobile too long", `{"mobile":"+3361234567890123"}`, []string{"mobile:invalid_mobile"}},
		{"mobile empty", `{"mobile":""}`, []string{"mobile:invalid_mobile"}},
		{"unknown time zone", `{"timeZone":"Mars/Olympus_Mons"}`, []string{"timeZone:unknown_time_zone"}},
		{"time zone Local", `{"timeZone":"Local"}`, []string{"timeZone:unknown_time_zone"}},
		{"time zone path", `{"timeZone":"../../etc/passwd"}`, []string{"timeZone:unknown_time_zone"}},
		{"time zone empty", `{"timeZone":""}`, []string{"timeZone:unknown_time_zone"}},
		{"time zone offset", `{"timeZone":"+02:00"}`, []string{"timeZone:unknown_time_zone"}},
		{"unknown language", `{"language":"de"}`, []string{"language:unknown_language"}},
		{"unknown role", `{"role":"owner"}`, []string{"role:unknown_role"}},
		{"blank first name", `{"firstName":"  "}`, []string{"firstName:required"}},
		{"last name too long", `{"lastName":"` + strings.Repeat("é", 101) + `"}`, []string{"lastName:invalid"}},
		{"invalid email", `{"email":"not-an-email"}`, []string{"email:invalid_email"}},
		{"unknown protected replies", `{"security":{"protectedReplies":"email"}}`, []string{"security.protectedReplies:unknown_value"}},
		{"null first name", `{"firstName":null}`, []string{"firstName:not_nullable"}},
		{"null email, role and language", `{"email":null,"role":null,"language":null}`, []string{"email:not_nullable", "language:not_nullable", "role:not_nullable"}},
		{"null security", `{"security":null}`, []string{"security:not_nullable"}},
		{"null security setting", `{"security":{"portal2fa":null,"protectedReplies":null}}`, []string{"security.portal2fa:not_nullable", "security.protectedReplies:not_nullable"}},
		{"every field wrong", `{"email":"x","language":"xx","role":"root","mobile":"12","timeZone":"Nowhere"}`,
			[]string{"email:invalid_email", "language:unknown_language", "mobile:invalid_mobile", "role:unknown_role", "timeZone:unknown_time_zone"}},
		{"mobile a number", `{"mobile":33612345678}`, []string{"mobile:invalid_type"}},
		{"portal2fa a string", `{"security":{"portal2fa":"yes"}}`, []string{"security.portal2fa:invalid_type"}},
		{"security a string", `{"security":"on"}`, []string{"security:invalid_type"}},
		{"unknown field", `{"nickname":"x"}`, []string{"nickname:unknown_field"}},
		{"account id in body", `{"accountId":"other"}`, []string{"accountId:unknown_field"}},
		{"license in body", `{"license":{"tier":"pro"}}`, []string{"license:unknown_field"}},
		{"unknown security field", `{"security":{"pin":"1234"}}`, []string{"pin:unknown_field"}},
		{"array", `[{"firstName":"x"}]`, []string{"body:not_object"}},
		{"not JSON", `firstName=x`, []string{"body:invalid_json"}},
		{"truncated", `{"firstName":"x"`, []string{"body:invalid_json"}},
		{"empty", ``, []string{"body:required"}},
	}
	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := f.patch(f.admin, id, c.body, nil).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
			if got := fields(p); !slices.Equal(got, c.fields) {
				t.Fatalf("errors %v, want %v", got, c.fields)
			}
		})
	}
	f.patch(f.admin, id, `{"firstName":"x"}`, map[string]string{"Content-Type": "text/plain"}).
		WantProblem(t, http.StatusUnsupportedMediaType, licadmin.EUNSUPPORTEDMEDIATYPE)
	wantNothingWritten(t, f.Env, f.acct, items, audits)
}

// TestUpdateUserIfMatch ensures optimistic concurrency on PATCH: If-Match
// with the current ETag (alone, in a list, or "*") applies the edit; a
// stale, weak or foreign tag answers 412 precondition_failed and changes
// nothing; a malformed header answers 400.
func TestUpdateUserIfMatch(t *testing.T) {
	f := newXFixture(t)
	id := f.user(t, "u@acme.test")
	_, tag := f.getUser(t, id)
	r := f.patch(f.admin, id, `{"lastName":"One"}`, map[string]string{"If-Match": tag})
	r.Want(t, http.StatusOK)
	next := r.Headers["ETag"]

	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	for _, h := range []string{tag, `W/` + next, `"abc"`, `"999"`, `"999", "1000"`} {
		t.Run("412 for "+h, func(t *testing.T) {
			f.patch(f.admin, id, `{"lastName":"Two"}`, map[string]string{"If-Match": h}).WantProblem(t, http.StatusPreconditionFailed, licadmin.EPRECONDITION)
			// Even an edit that would change nothing is refused.
			f.patch(f.admin, id, `{"lastName":"One"}`, map[string]string{"If-Match": h}).WantProblem(t, http.StatusPreconditionFailed, licadmin.EPRECONDITION)
		})
	}
	for _, h := range []string{"3", `"3`, `"3"x`, `W/3`, `"a"b"`} {
		t.Run("400 for "+h, func(t *testing.T) {
			p := f.patch(f.admin, id, `{"lastName":"Two"}`, map[string]string{"If-Match": h}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
			if got := fields(p); !slices.Equal(got, []string{"If-Match:invalid_header"}) {
				t.Fatalf("errors %v", got)
			}
		})
	}
	wantNothingWritten(t, f.Env, f.acct, items, audits)
	if u, _ := f.getUser(t, id); u.LastName != "One" {
		t.Fatalf("last name %q after refused edits", u.LastName)
	}
	// The current tag in a list, then "*": both apply.
	r = f.patch(f.admin, id, `{"lastName":"Listed"}`, map[string]string{"If-Match": `"999", ` + next})
	r.Want(t, http.StatusOK)
	if r.Headers["ETag"] != etagOf(mustVersion(t, next)+1) {
		t.Fatalf("ETag %s after %s", r.Headers["ETag"], next)
	}
	f.patch(f.admin, id, `{"lastName":"Any"}`, map[string]string{"If-Match": "*"}).Want(t, http.StatusOK)
	if u, _ := f.getUser(t, id); u.LastName != "Any" {
		t.Fatalf("last name %q", u.LastName)
	}
}

// TestUpdateUserIfMatchIsConditionalWrite ensures If-Match is enforced by
// the write's condition, not by comparing a read: a change that lands
// between the PATCH's read and its write makes the PATCH answer 412 and
// leaves the other change in place; without If-Match the PATCH is planned
// again from a fresh read and applies on top of it.
func TestUpdateUserIfMatchIsConditionalWrite(t *testing.T) {
	var env *apitest.Env
	var armed atomic.Bool
	var userID string
	// bump changes the user behind the handler's back, between its read
	// and its write, as a concurrent edit would.
	bump := func() {
		_, err := env.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
			TableName:                 aws.String(env.Table),
			Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#" + userID}, "sk": &types.AttributeValueMemberS{Value: "USER"}},
			UpdateExpression:          aws.String("SET #f = :f ADD #v :one"),
			ExpressionAttributeNames:  map[string]string{"#f": "firstName", "#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":f": &types.AttributeValueMemberS{Value: "Concurrent"}, ":one": &types.AttributeValueMemberN{Value: "1"}},
		})
		if err != nil {
			t.Errorf("concurrent change: %v", err)
		}
	}
	opt, calls := apitest.Faults(func(op string, n int) apitest.Fault {
		if op == "TransactWriteItems" && armed.CompareAndSwap(true, false) {
			bump()
		}
		return apitest.NoFault
	})
	env = apitest.New(t, opt)
	admin := "admin@cond.test"
	env.MustAccount(t, "Cond", admin)
	userID = apitest.Do(t, api.CreateUser(env.App), apitest.Request{Route: routeUsers, Email: admin, Body: userBody("u@cond.test", "user")}).User(t).ID
	get := func() (*licadmin.User, string) {
		r := apitest.Do(t, api.GetUser(env.App), userReq(routeGetUser, admin, userID, nil))
		return r.User(t), r.Headers["ETag"]
	}
	patch := api.UpdateUser(env.App)

	_, tag := get()
	armed.Store(true)
	calls.Reset()
	apitest.Do(t, patch, withHeaders(userReq(routeUpdateUser, admin, userID, `{"lastName":"Mine"}`), map[string]string{"If-Match": tag})).
		WantProblem(t, http.StatusPreconditionFailed, licadmin.EPRECONDITION)
	if calls.Get("TransactWriteItems") != 1 {
		t.Fatalf("the PATCH made %d writes, want 1 (refused by its condition)", calls.Get("TransactWriteItems"))
	}
	if u, _ := get(); u.FirstName != "Concurrent" || u.LastName == "Mine" {
		t.Fatalf("user %+v: the concurrent change must stay and the PATCH must not apply", u)
	}

	armed.Store(true)
	r := apitest.Do(t, patch, userReq(routeUpdateUser, admin, userID, `{"lastName":"Mine"}`))
	u := r.User(t)
	if u.FirstName != "Concurrent" || u.LastName != "Mine" {
		t.Fatalf("without If-Match the PATCH must apply on top of the concurrent change: %+v", u)
	}
	if _, now := get(); now != r.Headers["ETag"] {
		t.Fatalf("ETag %s, GET says %s", r.Headers["ETag"], now)
	}
	env.Invariants(t)
}

// TestUpdateUserRequiresPro ensures protected replies by SMS or Microsoft
// need a Pro license (422 requires_pro otherwise), "none" does not, and the
// store's transaction itself refuses them for a user without Pro.
func TestUpdateUserRequiresPro(t *testing.T) {
	f := newXFixture(t)
	none, eco, pro := f.user(t, "none@acme.test"), f.user(t, "eco@acme.test"), f.user(t, "pro@acme.test")
	f.assign(f.admin, eco, "eco").Want(t, http.StatusOK)
	f.assign(f.admin, pro, "pro").Want(t, http.StatusOK)
	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	for _, id := range []string{none, eco} {
		for _, v := range []string{"sms", "microsoft"} {
			f.patch(f.admin, id, map[string]any{"security": map[string]any{"protectedReplies": v}}, nil).
				WantProblem(t, http.StatusUnprocessableEntity, licadmin.EREQUIRESPRO)
			// Along with other valid changes: nothing applies.
			f.patch(f.admin, id, map[string]any{"firstName": "X", "security": map[string]any{"portal2fa": true, "protectedReplies": v}}, nil).
				WantProblem(t, http.StatusUnprocessableEntity, licadmin.EREQUIRESPRO)
		}
	}
	wantNothingWritten(t, f.Env, f.acct, items, audits)
	if u := f.patch(f.admin, eco, `{"security":{"protectedReplies":"none","portal2fa":true}}`, nil).User(t); u.Security.ProtectedReplies != "none" || !u.Security.Portal2FA {
		t.Fatalf("security %+v", u.Security)
	}
	for _, v := range []string{"sms", "microsoft", "none", "sms"} {
		if u := f.patch(f.admin, pro, map[string]any{"security": map[string]any{"protectedReplies": v}}, nil).User(t); u.Security.ProtectedReplies != v {
			t.Fatalf("pro user: protectedReplies %q, want %q", u.Security.ProtectedReplies, v)
		}
	}

	// The store's condition: a user read without Pro, edited to use SMS as
	// if the service had not checked, is refused by the transaction.
	c := f.MustCaller(t, f.admin)
	_, us, err := f.App.Store.LoadCaller(context.Background(), f.admin, eco)
	if err != nil {
		t.Fatal(err)
	}
	n := *us[0]
	n.Security.ProtectedReplies = "sms"
	if _, err := f.App.Store.UpdateUser(context.Background(), c, us[0], &n, "", false, time.Now()); licadmin.ErrorCode(err) != licadmin.EREQUIRESPRO {
		t.Fatalf("store accepted SMS replies for an eco user: %v", err)
	}
	f.Invariants(t)
}

// TestProSettingsFollowLicense ensures a user who loses Pro loses the
// settings that need it in the same change (protectedReplies back to
// "none", portal2fa kept) when its license is modified to a lower tier,
// removed or transferred; and keeps them when the tier stays Pro.
func TestProSettingsFollowLicense(t *testing.T) {
	cases := []struct {
		name string
		act  func(f *xfixture, id, other string) *apitest.Response
		keep bool
	}{
		{"modify to eco", func(f *xfixture, id, _ string) *apitest.Response {
			return f.h.modify(userReq(routeModify, f.admin, id, map[string]string{"tier": "eco"}))
		}, false},
		{"remove", func(f *xfixture, id, _ string) *apitest.Response {
			return f.h.remove(userReq(routeRemove, f.admin, id, nil))
		}, false},
		{"transfer", func(f *xfixture, id, other string) *apitest.Response {
			return f.h.transfer(userReq(routeTransfer, f.admin, id, map[string]string{"toUserId": other}))
		}, false},
		{"modify to pro again", func(f *xfixture, id, _ string) *apitest.Response {
			return f.h.modify(userReq(routeModify, f.admin, id, map[string]string{"tier": "pro"}))
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newXFixture(t)
			id, other := f.user(t, "pro@acme.test"), f.user(t, "other@acme.test")
			f.assign(f.admin, id, "pro").Want(t, http.StatusOK)
			f.patch(f.admin, id, `{"security":{"portal2fa":true,"protectedReplies":"microsoft"}}`, nil).Want(t, http.StatusOK)
			c.act(f, id, other).Want(t, http.StatusOK)
			u, _ := f.getUser(t, id)
			want := licadmin.Security{Portal2FA: true, ProtectedReplies: "none"}
			if c.keep {
				want.ProtectedReplies = "microsoft"
			}
			if u.Security != want {
				t.Fatalf("security after %s: %+v, want %+v", c.name, u.Security, want)
			}
			if o, _ := f.getUser(t, other); o.Security.ProtectedReplies != "none" {
				t.Fatalf("the other user's settings changed: %+v", o.Security)
			}
			f.Invariants(t)
		})
	}
}

// TestUpdateUserEmail ensures an email change moves the email claim in one
// transaction: the new address is the user's (and signs in as it), the old
// one is free again, the license and the log generation are kept; a taken
// address answers 409 email_taken, a domain not approved for the account
// 422 domain_not_approved, and refusals write nothing.
func TestUpdateUserEmail(t *testing.T) {
	f := newXFixture(t)
	id := f.user(t, "old@acme.test")
	f.assign(f.admin, id, "eco").Want(t, http.StatusOK)
	gen := f.LogGeneration(t, id)

	r := f.patch(f.admin, id, `{"email":" New@ACME.test "}`, nil)
	u := r.User(t)
	if u.Email != "new@acme.test" || u.License == nil || u.License.Tier != licadmin.Eco {
		t.Fatalf("after the change: email %q license %+v, want new@acme.test with its eco license", u.Email, u.License)
	}
	if g := f.LogGeneration(t, id); g != gen {
		t.Fatalf("log generation %d -> %d: an email change keeps the logs", gen, g)
	}
	if c := f.MustCaller(t, "new@acme.test"); c.UserID != id || c.Role != licadmin.RoleUser {
		t.Fatalf("the new claim is %+v", c)
	}
	if rec := f.Env.AuditLog(t, f.acct)[0]; rec.Action != store.ActionUserUpdate || rec.Details["email"] != "old@acme.test -> new@acme.test" {
		t.Fatalf("audit %+v", rec)
	}
	// The old address is free, the new one taken.
	f.user(t, "old@acme.test")
	f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("new@acme.test", "user")}).WantProblem(t, http.StatusConflict, licadmin.EEMAILTAKEN)
	wantPool(t, f.pool(t), licadmin.Eco, 2, 1)

	// An admin's new address signs in as the admin, the old one no more.
	a2 := f.userAs(t, f.admin, "a2@acme.test", "admin")
	f.patch(f.admin, a2, `{"email":"a2.new@acme.test"}`, nil).Want(t, http.StatusOK)
	f.h.pool(apitest.Request{Route: routePool, Email: "a2.new@acme.test"}).Want(t, http.StatusOK)
	f.h.pool(apitest.Request{Route: routePool, Email: "a2@acme.test"}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)

	// Webmail addresses need no approval.
	f.patch(f.admin, id, `{"email":"someone@outlook.com"}`, nil).Want(t, http.StatusOK)
	// A webmail address held by a user of another account.
	f.userAs(t, f.other, "shared@gmail.com", "user")

	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	cases := []struct {
		name, email string
		status      int
		code        string
	}{
		{"address of another user", "OLD@acme.test", http.StatusConflict, licadmin.EEMAILTAKEN},
		{"address of the caller", f.admin, http.StatusConflict, licadmin.EEMAILTAKEN},
		{"address of another admin", "a2.new@acme.test", http.StatusConflict, licadmin.EEMAILTAKEN},
		{"address of another account's user", "Shared@GMAIL.com", http.StatusConflict, licadmin.EEMAILTAKEN},
		{"unknown domain", "x@unknown.test", http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
		{"subdomain of an approved domain", "x@eu.acme.test", http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
		{"domain of another account", "x@globex.test", http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.patch(f.admin, id, map[string]string{"email": c.email}, nil).WantProblem(t, c.status, c.code)
		})
	}
	// Both rules fail: another account's user in another account's domain.
	r = f.patch(f.admin, id, map[string]string{"email": f.other}, nil)
	if r.StatusCode != http.StatusConflict && r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("taking another account's admin address answered %d %s", r.StatusCode, r.Body)
	}
	wantNothingWritten(t, f.Env, f.acct, items, audits)
	f.Invariants(t)
}

// TestUpdateOwnEmail ensures an admin can change its own address (the
// admin check and the claim move are one item of the transaction): the
// new address is an admin at once, the old one nobody.
func TestUpdateOwnEmail(t *testing.T) {
	f := newXFixture(t)
	self := f.MustCaller(t, f.admin).UserID
	r := f.patch(f.admin, self, `{"email":"chief@acme.test","lastName":"Chief"}`, nil)
	if u := r.User(t); u.Email != "chief@acme.test" || u.Role != licadmin.RoleAdmin {
		t.Fatalf("own edit answered %+v", u)
	}
	f.h.pool(apitest.Request{Route: routePool, Email: "chief@acme.test"}).Want(t, http.StatusOK)
	f.h.pool(apitest.Request{Route: routePool, Email: f.admin}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	if rec := f.Env.AuditLog(t, f.acct)[0]; rec.Actor != f.admin || rec.Target != self {
		t.Fatalf("audit %+v: the actor is the address that made the change", rec)
	}
	f.Invariants(t)
}

// TestUpdateUserRole ensures role changes: a promoted user is an admin at
// once (the claim that callers are looked up by has its role), a demoted
// one is not; demoting the account's last admin, itself or not, answers
// 409 last_admin and changes nothing; an admin may demote itself when
// another admin remains.
func TestUpdateUserRole(t *testing.T) {
	f := newXFixture(t)
	self := f.MustCaller(t, f.admin).UserID
	plain := "plain@acme.test"
	id := f.user(t, plain)

	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	f.patch(f.admin, self, `{"role":"user"}`, nil).WantProblem(t, http.StatusConflict, licadmin.ELASTADMIN)
	f.patch(f.admin, self, `{"role":"user","firstName":"Still"}`, nil).WantProblem(t, http.StatusConflict, licadmin.ELASTADMIN)
	wantNothingWritten(t, f.Env, f.acct, items, audits)

	if u := f.patch(f.admin, id, `{"role":"admin"}`, nil).User(t); u.Role != licadmin.RoleAdmin {
		t.Fatalf("role %q after promotion", u.Role)
	}
	f.h.pool(apitest.Request{Route: routePool, Email: plain}).Want(t, http.StatusOK)
	f.Invariants(t)

	// The promoted admin demotes the first one; the first is no admin any
	// more, and the promoted one is now the last.
	f.patch(plain, self, `{"role":"user"}`, nil).Want(t, http.StatusOK)
	f.h.pool(apitest.Request{Route: routePool, Email: f.admin}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.patch(f.admin, id, `{"role":"user"}`, nil).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.patch(plain, id, `{"role":"user"}`, nil).WantProblem(t, http.StatusConflict, licadmin.ELASTADMIN)
	f.Invariants(t)

	// An admin demotes itself while another admin remains.
	f.patch(plain, self, `{"role":"admin"}`, nil).Want(t, http.StatusOK)
	if u := f.patch(plain, id, `{"role":"user","email":"demoted@acme.test"}`, nil).User(t); u.Role != licadmin.RoleUser || u.Email != "demoted@acme.test" {
		t.Fatalf("self demotion with an email change answered %+v", u)
	}
	f.h.pool(apitest.Request{Route: routePool, Email: "demoted@acme.test"}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.h.pool(apitest.Request{Route: routePool, Email: f.admin}).Want(t, http.StatusOK)
	f.Invariants(t)
}

// writeBarrier returns a DynamoDB client option and arm: once armed, the
// next two TransactWriteItems calls wait for each other, so that two
// racing requests have both read before either writes, the worst case of a
// race. Calls after those two pass at once.
func writeBarrier(t *testing.T) (func(*dynamodb.Options), func()) {
	t.Helper()
	var mu sync.Mutex
	var gate chan struct{}
	arrived := 0
	opt, _ := apitest.Faults(func(op string, n int) apitest.Fault {
		if op != "TransactWriteItems" {
			return apitest.NoFault
		}
		mu.Lock()
		g := gate
		if g != nil {
			arrived++
			if arrived == 2 {
				close(g)
				gate = nil
			}
		}
		mu.Unlock()
		if g != nil {
			select {
			case <-g:
			case <-time.After(10 * time.Second):
				t.Errorf("the second transaction never came")
			}
		}
		return apitest.NoFault
	})
	arm := func() {
		mu.Lock()
		defer mu.Unlock()
		gate, arrived = make(chan struct{}), 0
	}
	return opt, arm
}

// demoteRaceEnv is an account with two admins, a and b, over a client with
// a write barrier.
type demoteRaceEnv struct {
	*apitest.Env
	a, b       string // emails
	aID, bID   string
	patch, del apigw.Handler
	arm        func()
}

func newDemoteRaceEnv(t *testing.T) *demoteRaceEnv {
	t.Helper()
	opt, arm := writeBarrier(t)
	env := apitest.New(t, opt)
	r := &demoteRaceEnv{Env: env, a: "a@duo.test", b: "b@duo.test", arm: arm}
	_, r.aID = env.MustAccount(t, "Duo", r.a)
	r.bID = apitest.Do(t, api.CreateUser(env.App), apitest.Request{Route: routeUsers, Email: r.a, Body: userBody(r.b, "admin")}).User(t).ID
	r.patch, r.del = api.UpdateUser(env.App), api.DeleteUser(env.App)
	return r
}

// codeOf returns "ok" for a success, else the problem's code.
func codeOf(t *testing.T, r *apitest.Response) string {
	t.Helper()
	if r.StatusCode < 300 {
		return "ok"
	}
	var p apigw.Problem
	r.Decode(t, &p)
	return p.Code
}

// admins returns the ids of the account's users whose role is admin.
func admins(t *testing.T, env *apitest.Env) []string {
	t.Helper()
	var ids []string
	for _, it := range env.Scan(t) {
		if avString(it["sk"]) == "USER" && avString(it["role"]) == string(licadmin.RoleAdmin) {
			ids = append(ids, avString(it["id"]))
		}
	}
	slices.Sort(ids)
	return ids
}

// TestConcurrentDemoteEachOther ensures the last-admin rule under
// concurrency: the two admins of an account demote each other at the same
// time, both having read before either writes; exactly one succeeds, the
// other answers 409 last_admin, and one admin remains. The same holds when
// each deletes the other.
func TestConcurrentDemoteEachOther(t *testing.T) {
	for _, mode := range []string{"demote", "delete"} {
		for round := range 3 {
			t.Run(fmt.Sprintf("%s %d", mode, round), func(t *testing.T) {
				r := newDemoteRaceEnv(t)
				r.arm()
				codes := make([]string, 2)
				var wg sync.WaitGroup
				for i, c := range []struct{ caller, target string }{{r.a, r.bID}, {r.b, r.aID}} {
					wg.Go(func() {
						var resp *apitest.Response
						if mode == "demote" {
							resp = apitest.Do(t, r.patch, userReq(routeUpdateUser, c.caller, c.target, `{"role":"user"}`))
						} else {
							resp = apitest.Do(t, r.del, userReq(routeDeleteUser, c.caller, c.target, nil))
						}
						codes[i] = codeOf(t, resp)
					})
				}
				wg.Wait()
				slices.Sort(codes)
				if !slices.Equal(codes, []string{licadmin.ELASTADMIN, "ok"}) {
					t.Fatalf("answers %v, want one ok and one %s", codes, licadmin.ELASTADMIN)
				}
				if got := admins(t, r.Env); len(got) != 1 {
					t.Fatalf("admins %v, want exactly one", got)
				}
				r.Invariants(t)
			})
		}
	}
}

// TestConcurrentDemotionsKeepAnAdmin ensures that five admins demoting
// every other admin at once, with transactions cancelled by injected
// conflicts, leave at least one admin, an adminCount equal to the number of
// admins, and answers that are only success, last_admin, or forbidden (for
// a caller demoted meanwhile).
func TestConcurrentDemotionsKeepAnAdmin(t *testing.T) {
	opt, _ := apitest.Faults(apitest.ConflictEvery(4))
	env := apitest.New(t, opt)
	first := "admin0@five.test"
	_, firstID := env.MustAccount(t, "Five", first)
	emails, ids := []string{first}, []string{firstID}
	for i := 1; i < 5; i++ {
		e := fmt.Sprintf("admin%d@five.test", i)
		emails = append(emails, e)
		ids = append(ids, apitest.Do(t, api.CreateUser(env.App), apitest.Request{Route: routeUsers, Email: first, Body: userBody(e, "admin")}).User(t).ID)
	}
	patch := api.UpdateUser(env.App)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i, caller := range emails {
		for j, target := range ids {
			if i == j {
				continue
			}
			wg.Go(func() {
				code := codeOf(t, apitest.Do(t, patch, userReq(routeUpdateUser, caller, target, `{"role":"user"}`)))
				mu.Lock()
				seen[code]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	t.Logf("answers: %v", seen)
	for code := range seen {
		if code != "ok" && code != licadmin.ELASTADMIN && code != licadmin.EFORBIDDEN {
			t.Errorf("unexpected answer %s", code)
		}
	}
	if got := admins(t, env); len(got) < 1 {
		t.Fatal("no admin left")
	}
	env.Invariants(t)
}

// TestDeleteUser ensures DELETE /v1/users/{id}: 204 with no body; the user
// is gone (404 after), its license is back in the pool, its address is
// free, one audit record names it with the license and log generation it
// had; an admin's deletion lowers the admin count, the last admin's answers
// 409 last_admin; unknown and foreign ids answer the same 404.
func TestDeleteUser(t *testing.T) {
	f := newXFixture(t)
	id := f.user(t, "gone@acme.test")
	f.assign(f.admin, id, "pro").Want(t, http.StatusOK)
	gen := f.LogGeneration(t, id)

	n := len(f.Env.AuditLog(t, f.acct))
	r := f.deleteUser(userReq(routeDeleteUser, f.admin, id, nil))
	r.Want(t, http.StatusNoContent)
	if r.Body != "" || r.Headers["Content-Type"] != "" {
		t.Fatalf("204 with body %q and Content-Type %q", r.Body, r.Headers["Content-Type"])
	}
	f.h.get(userReq(routeGetUser, f.admin, id, nil)).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	wantPool(t, f.pool(t), licadmin.Pro, 1, 0)
	recs := f.Env.AuditLog(t, f.acct)
	if len(recs) != n+1 || recs[0].Action != store.ActionUserDelete || recs[0].Target != id || recs[0].Actor != f.admin ||
		recs[0].Details["tier"] != "pro" || recs[0].Details["email"] != "gone@acme.test" || recs[0].Details["logGeneration"] != strconv.FormatInt(gen, 10) ||
		recs[0].RequestID != r.RequestID || recs[0].SourceIP != sourceIP {
		t.Fatalf("audit %+v", recs[0])
	}
	if slices.Contains(flatten(f.listAll(t, f.admin, nil)), id) {
		t.Fatal("the deleted user is listed")
	}
	f.Invariants(t)

	// The address can be used again, and the freed license assigned.
	again := f.user(t, "gone@acme.test")
	f.assign(f.admin, again, "pro").Want(t, http.StatusOK)

	f.deleteUser(userReq(routeDeleteUser, f.admin, id, nil)).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	unknown := f.deleteUser(userReq(routeDeleteUser, f.admin, unknownID, nil))
	unknown.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	foreign := f.deleteUser(userReq(routeDeleteUser, f.admin, f.otherID, nil))
	wantSameAnswer(t, foreign, unknown, f.otherID, unknownID)

	// Admins: the last one cannot go, another one can, and so can an admin
	// itself while another remains.
	self := f.MustCaller(t, f.admin).UserID
	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	f.deleteUser(userReq(routeDeleteUser, f.admin, self, nil)).WantProblem(t, http.StatusConflict, licadmin.ELASTADMIN)
	wantNothingWritten(t, f.Env, f.acct, items, audits)
	a2 := f.userAs(t, f.admin, "a2@acme.test", "admin")
	f.deleteUser(userReq(routeDeleteUser, f.admin, a2, nil)).Want(t, http.StatusNoContent)
	f.Invariants(t)
	f.userAs(t, f.admin, "a3@acme.test", "admin")
	f.deleteUser(userReq(routeDeleteUser, f.admin, self, nil)).Want(t, http.StatusNoContent)
	f.h.pool(apitest.Request{Route: routePool, Email: f.admin}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.h.pool(apitest.Request{Route: routePool, Email: "a3@acme.test"}).Want(t, http.StatusOK)
	f.Invariants(t)
}

// TestUserEditAccess ensures only admins edit and delete users: a plain
// user (also on itself), a token of nobody, and no token are refused, and
// nothing is written.
func TestUserEditAccess(t *testing.T) {
	f := newXFixture(t)
	plain := "plain@acme.test"
	plainID := f.user(t, plain)
	target := f.user(t, "target@acme.test")
	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	cases := []struct {
		name, caller, id string
		status           int
		code             string
	}{
		{"plain user", plain, target, http.StatusForbidden, licadmin.EFORBIDDEN},
		{"plain user on itself", plain, plainID, http.StatusForbidden, licadmin.EFORBIDDEN},
		{"unknown email", "stranger@acme.test", target, http.StatusForbidden, licadmin.EFORBIDDEN},
		{"admin of another account", f.other, target, http.StatusNotFound, licadmin.ENOTFOUND},
		{"no token", "", target, http.StatusUnauthorized, licadmin.EUNAUTHORIZED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.patch(c.caller, c.id, `{"role":"admin"}`, nil).WantProblem(t, c.status, c.code)
			f.deleteUser(userReq(routeDeleteUser, c.caller, c.id, nil)).WantProblem(t, c.status, c.code)
		})
	}
	wantNothingWritten(t, f.Env, f.acct, items, audits)
}

// TestUserEditIdempotency ensures rule 9 on PATCH and DELETE of a user: a
// retry with the same key answers the first response (the PATCH's ETag and
// the DELETE's empty 204 included) and changes nothing; the same key with
// another body answers 422.
func TestUserEditIdempotency(t *testing.T) {
	f := newXFixture(t)
	id := f.user(t, "u@acme.test")
	n := len(f.Env.AuditLog(t, f.acct))
	first := f.patch(f.admin, id, `{"lastName":"Once"}`, idemKey("edit-1"))
	first.Want(t, http.StatusOK)
	// Another change in between: the replay still answers the first result.
	f.patch(f.admin, id, `{"firstName":"Between"}`, nil).Want(t, http.StatusOK)
	again := f.patch(f.admin, id, `{"lastName":"Once"}`, idemKey("edit-1"))
	wantReplay(t, first, again)
	if again.Headers["ETag"] == "" {
		t.Fatalf("the replay lost the ETag: %v", again.Headers)
	}
	f.patch(f.admin, id, `{"lastName":"Twice"}`, idemKey("edit-1")).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)
	if got := len(f.Env.AuditLog(t, f.acct)); got != n+2 {
		t.Fatalf("%d audit records for two edits", got-n)
	}

	del := withHeaders(userReq(routeDeleteUser, f.admin, id, nil), idemKey("delete-1"))
	d1 := f.deleteUser(del)
	d1.Want(t, http.StatusNoContent)
	d2 := f.deleteUser(del)
	wantReplay(t, d1, d2)
	if d2.StatusCode != http.StatusNoContent || d2.Body != "" || d2.Headers["Content-Type"] != "" {
		t.Fatalf("replayed DELETE answered %d %q %v", d2.StatusCode, d2.Body, d2.Headers)
	}
	if got := len(f.Env.AuditLog(t, f.acct)); got != n+3 {
		t.Fatalf("%d audit records for two edits and one deletion", got-n)
	}
	f.Invariants(t)
}

// TestConcurrentDeleteAndLicenseOps ensures deleting users is consistent
// with license operations racing on the same users (assign, modify, remove,
// transfer to and from them), with injected transaction conflicts: pool
// counters always equal the licenses held, no deleted user keeps a claim
// or a license, and every answer is a success or an expected refusal.
func TestConcurrentDeleteAndLicenseOps(t *testing.T) {
	opt, _ := apitest.Faults(apitest.ConflictEvery(5))
	r := newRaceEnv(t, 12, opt)
	r.MustLicenses(t, r.acct, licadmin.Eco, 5)
	r.MustLicenses(t, r.acct, licadmin.Pro, 3)
	del := api.DeleteUser(r.App)
	// Half the users hold a license before the race.
	for i, id := range r.users[:6] {
		tier := []string{"eco", "pro"}[i%2]
		r.do(r.assign, routeAssign, map[string]string{"userId": id}, nil, map[string]string{"tier": tier}).Want(t, http.StatusOK)
	}
	seen := newAnswers("ok", licadmin.ENOTFOUND, licadmin.ENOLICENSE, licadmin.ELICENSEASSIGNED,
		licadmin.EUSERNOLICENSE, licadmin.ETARGETHASLICENSE)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for k := range 12 {
				id := r.users[(w*5+k*7)%len(r.users)]
				to := r.users[(w*3+k*11+1)%len(r.users)]
				var resp *apitest.Response
				switch (w + k) % 6 {
				case 0:
					resp = r.do(del, routeDeleteUser, map[string]string{"userId": id}, nil, nil)
				case 1:
					resp = r.do(r.assign, routeAssign, map[string]string{"userId": id}, nil, map[string]string{"tier": "eco"})
				case 2:
					resp = r.do(r.transfer, routeTransfer, map[string]string{"userId": id}, nil, map[string]string{"toUserId": to})
				case 3:
					resp = r.do(r.modify, routeModify, map[string]string{"userId": id}, nil, map[string]string{"tier": "pro"})
				case 4:
					resp = r.do(r.remove, routeRemove, map[string]string{"userId": id}, nil, nil)
				default:
					resp = r.do(r.transfer, routeTransfer, map[string]string{"userId": to}, nil, map[string]string{"toUserId": id})
				}
				seen.record(t, r, "", resp)
			}
		})
	}
	wg.Wait()
	seen.mustHave(t, "ok", "nothing succeeded")
	r.Invariants(t)
	// Each deleted user is entirely gone: no item names it any more.
	var remaining int
	for _, it := range r.Scan(t) {
		if avString(it["sk"]) == "USER" {
			remaining++
		}
	}
	deleted := 0
	for _, id := range r.users {
		if r.codeOf(r.do(r.assign, routeAssign, map[string]string{"userId": id}, nil, map[string]string{"tier": "eco"})) == licadmin.ENOTFOUND {
			deleted++
		}
	}
	if remaining != len(r.users)+1-deleted {
		t.Fatalf("%d user items for %d users of which %d deleted (and the admin)", remaining, len(r.users), deleted)
	}
	r.Invariants(t)
}
