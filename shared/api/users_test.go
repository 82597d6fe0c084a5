package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// TestCreateUserRepresentation ensures that POST /v1/users answers 201 with
// exactly the user representation of docs/api.md (email lower-cased, pending, no
// license, null mobile and time zone, default security, RFC 3339 UTC times),
// a Location naming the new user and an ETag that GET agrees with.
func TestCreateUserRepresentation(t *testing.T) {
	f := newFixture(t)
	before := time.Now().UTC()
	r := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{
		"email": "  Grace.Hopper@ACME.test ", "firstName": " Grace ", "lastName": "Hopper", "language": "fr", "role": "admin"}})
	r.Want(t, http.StatusCreated)
	if ct := r.Headers["Content-Type"]; ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}

	var raw map[string]json.RawMessage
	r.Decode(t, &raw)
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	wantKeys := []string{"createdAt", "email", "firstName", "id", "language", "lastName", "license", "mobile", "role", "security", "status", "timeZone", "updatedAt"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("user fields %v, want %v", keys, wantKeys)
	}
	for _, k := range []string{"license", "mobile", "timeZone"} {
		if string(raw[k]) != "null" {
			t.Errorf("%s = %s, want null", k, raw[k])
		}
	}
	if string(raw["security"]) != `{"portal2fa":false,"protectedReplies":"none"}` {
		t.Errorf("security = %s, want {\"portal2fa\":false,\"protectedReplies\":\"none\"}", raw["security"])
	}
	for _, k := range []string{"createdAt", "updatedAt"} {
		var s string
		if err := json.Unmarshal(raw[k], &s); err != nil || !strings.HasSuffix(s, "Z") {
			t.Fatalf("%s = %s, want an RFC 3339 UTC time", k, raw[k])
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("%s = %s, want the time of the request", k, s)
		}
	}

	u := r.User(t)
	want := licadmin.User{ID: u.ID, Email: "grace.hopper@acme.test", FirstName: "Grace", LastName: "Hopper", Language: "fr",
		Role: licadmin.RoleAdmin, Status: licadmin.StatusPending, Security: licadmin.Security{ProtectedReplies: "none"},
		CreatedAt: u.CreatedAt, UpdatedAt: u.CreatedAt}
	if u.ID == "" || !reflect.DeepEqual(*u, want) {
		t.Fatalf("user = %+v, want %+v", *u, want)
	}
	if loc := r.Headers["Location"]; loc != "/v1/users/"+u.ID {
		t.Fatalf("Location %q, want /v1/users/%s", loc, u.ID)
	}
	etag := r.Headers["ETag"]
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
		t.Fatalf("ETag %q, want a quoted entity tag", etag)
	}

	g := f.h.get(userReq(routeGetUser, f.admin, u.ID, nil))
	g.Want(t, http.StatusOK)
	if g.Body != r.Body || g.Headers["ETag"] != etag {
		t.Fatalf("GET answered %s ETag %s, want the created user %s ETag %s", g.Body, g.Headers["ETag"], r.Body, etag)
	}
	// Defaults: language en, role user.
	d := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{"email": "d@acme.test", "firstName": "D", "lastName": "E"}}).User(t)
	if d.Language != "en" || d.Role != licadmin.RoleUser {
		t.Fatalf("defaults: language %q role %q, want en and user", d.Language, d.Role)
	}
	f.Invariants(t)
}

// TestCreateUserDomains ensures rule 5 on the form: only domains approved
// for the caller's account, or public webmail, are accepted; a domain
// approved for another account is refused like an unknown one, and a
// refusal writes nothing.
func TestCreateUserDomains(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, email string
		status      int
		code        string
	}{
		{"own approved domain", "ok@acme.test", http.StatusCreated, ""},
		{"own domain in capitals", "Caps@ACME.TEST", http.StatusCreated, ""},
		{"domain of another account", "x@globex.test", http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
		{"unknown domain", "x@unknown.test", http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
		{"subdomain of own domain", "x@eu.acme.test", http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED},
		{"public webmail", "someone@gmail.com", http.StatusCreated, ""},
		{"public webmail in capitals", "Other@GMAIL.com", http.StatusCreated, ""},
		{"another public webmail", "someone@outlook.com", http.StatusCreated, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.Scan(t))
			r := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody(c.email, "user")})
			if c.code == "" {
				r.Want(t, http.StatusCreated)
				if u := r.User(t); u.Email != licadmin.NormalizeEmail(c.email) {
					t.Fatalf("email %q, want %q", u.Email, licadmin.NormalizeEmail(c.email))
				}
				return
			}
			r.WantProblem(t, c.status, c.code)
			if after := len(f.Scan(t)); after != before {
				t.Fatalf("a refused user wrote %d items", after-before)
			}
		})
	}
	f.Invariants(t)
}

// TestCreateUserEmailTaken ensures rule 3: an email belongs to one user in
// the whole system, whatever its letter case and whichever account holds it.
func TestCreateUserEmailTaken(t *testing.T) {
	f := newFixture(t)
	f.userAs(t, f.admin, "dup@acme.test", "user")
	// A webmail address that a user of the other account holds.
	r := f.h.create(apitest.Request{Route: routeUsers, Email: f.other, Body: userBody("shared@gmail.com", "user")})
	r.Want(t, http.StatusCreated)

	for _, email := range []string{"dup@acme.test", "DUP@Acme.Test", " dup@acme.test ", f.admin, "shared@gmail.com", "SHARED@gmail.com"} {
		t.Run(email, func(t *testing.T) {
			f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody(email, "user")}).
				WantProblem(t, http.StatusConflict, licadmin.EEMAILTAKEN)
		})
	}
	// The other account's admin: its domain is not acme's, so the domain
	// rule answers first; either way nothing is created.
	before := len(f.Scan(t))
	r = f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody(f.other, "user")})
	if r.StatusCode != http.StatusConflict && r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("adding another account's admin answered %d %s, want 409 email_taken or 422 domain_not_approved", r.StatusCode, r.Body)
	}
	if after := len(f.Scan(t)); after != before {
		t.Fatalf("a refused user wrote %d items", after-before)
	}
	f.Invariants(t)
}

// TestCreateUserValidation ensures that bad input answers 400 (413, 415)
// problem+json naming each offending field, and writes nothing (rule 10).
func TestCreateUserValidation(t *testing.T) {
	f := newFixture(t)
	valid := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"email": "new@acme.test", "firstName": "New", "lastName": "User", "language": "en", "role": "user"}
		change(m)
		return m
	}
	cases := []struct {
		name    string
		body    any
		ct      string
		status  int
		code    string
		fields  []string
		noField bool // the problem carries no "errors" at all
	}{
		{name: "bad email", body: valid(func(m map[string]any) { m["email"] = "not-an-email" }), fields: []string{"email:invalid_email"}},
		{name: "email without dot in domain", body: valid(func(m map[string]any) { m["email"] = "a@localhost" }), fields: []string{"email:invalid_email"}},
		{name: "email with display name", body: valid(func(m map[string]any) { m["email"] = "New <new@acme.test>" }), fields: []string{"email:invalid_email"}},
		{name: "email too long", body: valid(func(m map[string]any) { m["email"] = strings.Repeat("a", 250) + "@acme.test" }), fields: []string{"email:invalid_email"}},
		{name: "missing email", body: valid(func(m map[string]any) { delete(m, "email") }), fields: []string{"email:invalid_email"}},
		{name: "missing names", body: valid(func(m map[string]any) { delete(m, "firstName"); delete(m, "lastName") }), fields: []string{"firstName:required", "lastName:required"}},
		{name: "blank names", body: valid(func(m map[string]any) { m["firstName"] = "  "; m["lastName"] = "" }), fields: []string{"firstName:required", "lastName:required"}},
		{name: "name too long", body: valid(func(m map[string]any) { m["lastName"] = strings.Repeat("é", 101) }), fields: []string{"lastName:invalid"}},
		{name: "name with control character", body: valid(func(m map[string]any) { m["firstName"] = "a\x00b" }), fields: []string{"firstName:invalid"}},
		{name: "unknown language", body: valid(func(m map[string]any) { m["language"] = "de" }), fields: []string{"language:unknown_language"}},
		{name: "unknown role", body: valid(func(m map[string]any) { m["role"] = "owner" }), fields: []string{"role:unknown_role"}},
		{name: "every field wrong", body: map[string]any{"email": "x", "language": "xx", "role": "root"},
			fields: []string{"email:invalid_email", "firstName:required", "language:unknown_language", "lastName:required", "role:unknown_role"}},
		{name: "unknown field", body: valid(func(m map[string]any) { m["nickname"] = "nn" }), fields: []string{"nickname:unknown_field"}},
		{name: "account id in body", body: valid(func(m map[string]any) { m["accountId"] = "other" }), fields: []string{"accountId:unknown_field"}},
		{name: "email not a string", body: valid(func(m map[string]any) { m["email"] = 5 }), fields: []string{"email:invalid_type"}},
		{name: "name an object", body: valid(func(m map[string]any) { m["firstName"] = map[string]int{"a": 1} }), fields: []string{"firstName:invalid_type"}},
		{name: "role a boolean", body: valid(func(m map[string]any) { m["role"] = true }), fields: []string{"role:invalid_type"}},
		{name: "body an array", body: `[{"email":"new@acme.test"}]`, fields: []string{"body:not_object"}},
		{name: "body a string", body: `"new@acme.test"`, fields: []string{"body:not_object"}},
		{name: "not JSON", body: `email=new@acme.test&firstName=New`, fields: []string{"body:invalid_json"}},
		{name: "truncated JSON", body: `{"email":"new@acme.test"`, fields: []string{"body:invalid_json"}},
		{name: "two objects", body: `{"email":"new@acme.test","firstName":"N","lastName":"U"} {}`, fields: []string{"body:trailing_data"}},
		{name: "empty body", body: ``, fields: []string{"body:required"}},
		{name: "not JSON content type", body: `{"email":"new@acme.test","firstName":"N","lastName":"U"}`, ct: "text/plain",
			status: http.StatusUnsupportedMediaType, code: licadmin.EUNSUPPORTEDMEDIATYPE, noField: true},
		{name: "over 64 KiB", body: valid(func(m map[string]any) { m["firstName"] = strings.Repeat("a", apigw.MaxBodyBytes) }),
			status: http.StatusRequestEntityTooLarge, code: licadmin.ETOOLARGE, noField: true},
	}
	before := f.Scan(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, code := c.status, c.code
			if status == 0 {
				status, code = http.StatusBadRequest, licadmin.EINVALID
			}
			req := apitest.Request{Route: routeUsers, Email: f.admin, Body: c.body}
			if c.ct != "" {
				req.Headers = map[string]string{"Content-Type": c.ct}
			}
			p := f.h.create(req).WantProblem(t, status, code)
			if got := fields(p); c.noField && len(got) > 0 || !c.noField && !slices.Equal(got, c.fields) {
				t.Fatalf("errors %v, want %v", got, c.fields)
			}
		})
	}
	if after := f.Scan(t); len(after) != len(before) {
		t.Fatalf("refused requests wrote %d items", len(after)-len(before))
	}
}

// TestCreateUserAccess ensures that only admins add users: a plain user
// gets 403, a token of nobody 403, no token 401, and none of them writes.
func TestCreateUserAccess(t *testing.T) {
	f := newFixture(t)
	plain := "plain@acme.test"
	f.userAs(t, f.admin, plain, "user")
	before := len(f.Scan(t))
	cases := []struct {
		name, caller string
		status       int
		code         string
	}{
		{"plain user", plain, http.StatusForbidden, licadmin.EFORBIDDEN},
		{"plain user, other case", "PLAIN@acme.test", http.StatusForbidden, licadmin.EFORBIDDEN},
		{"unknown email", "stranger@acme.test", http.StatusForbidden, licadmin.EFORBIDDEN},
		{"no token", "", http.StatusUnauthorized, licadmin.EUNAUTHORIZED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.h.create(apitest.Request{Route: routeUsers, Email: c.caller, Body: userBody("new@acme.test", "admin")})
			r.WantProblem(t, c.status, c.code)
			if c.status == http.StatusUnauthorized && r.Headers["WWW-Authenticate"] != "Bearer" {
				t.Fatalf("401 without WWW-Authenticate: Bearer: %v", r.Headers)
			}
		})
	}
	if after := len(f.Scan(t)); after != before {
		t.Fatalf("refused callers wrote %d items", after-before)
	}
}

// TestGetUser ensures GET /v1/users/{id} answers the user with its ETag,
// and that a user of another account answers exactly like an unknown id
// (rule 4).
func TestGetUser(t *testing.T) {
	f := newFixture(t)
	id := f.user(t, "u@acme.test")
	f.assign(f.admin, id, "eco").Want(t, http.StatusOK)

	r := f.h.get(userReq(routeGetUser, f.admin, id, nil))
	u := r.User(t)
	if u.ID != id || u.License == nil || u.License.Tier != licadmin.Eco || r.Headers["ETag"] == "" {
		t.Fatalf("GET answered %s ETag %q", r.Body, r.Headers["ETag"])
	}

	unknown := f.h.get(userReq(routeGetUser, f.admin, "01UNKNOWNUSERID0000000000", nil))
	unknown.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	foreign := f.h.get(userReq(routeGetUser, f.admin, f.otherID, nil))
	foreign.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	wantSameAnswer(t, foreign, unknown, f.otherID, "01UNKNOWNUSERID0000000000")

	f.h.get(userReq(routeGetUser, "u@acme.test", id, nil)).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.h.get(userReq(routeGetUser, "", id, nil)).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
}

// TestListUsersLimit ensures the page size: 50 by default (limit absent
// or empty), 1 to 200 accepted, anything else (0, 201, negative, not a
// number) 400.
func TestListUsersLimit(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := range 51 {
		ids = append(ids, f.user(t, fmt.Sprintf("u%02d@acme.test", i)))
	}
	p := f.listPage(t, f.admin, nil)
	if len(p.Items) != 50 || p.NextCursor == nil {
		t.Fatalf("default page: %d items, next %v; want 50 and a cursor", len(p.Items), p.NextCursor)
	}
	for _, l := range []string{"1", "200"} {
		if p := f.listPage(t, f.admin, map[string]string{"limit": l}); l == "1" && len(p.Items) != 1 || l == "200" && (len(p.Items) != 52 || p.NextCursor != nil) {
			t.Fatalf("limit %s: %d items, next %v", l, len(p.Items), p.NextCursor)
		}
	}
	if p := f.listPage(t, f.admin, map[string]string{"limit": ""}); len(p.Items) != 50 {
		t.Fatalf("limit= (empty): %d items, want the default 50", len(p.Items))
	}
	for _, l := range []string{"0", "201", "-1", "x", "1.5", "99999999999999999999"} {
		t.Run("limit="+l, func(t *testing.T) {
			p := f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: map[string]string{"limit": l}}).
				WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
			if got := fields(p); !slices.Equal(got, []string{"limit:out_of_range"}) {
				t.Fatalf("errors %v, want limit:out_of_range", got)
			}
		})
	}
	all := flatten(f.listAll(t, f.admin, map[string]string{"limit": "7"}))
	if len(all) != 52 || !slices.Equal(all[1:], ids) {
		t.Fatalf("listing with limit 7 gave %d users, want the admin then the 51 users in creation order", len(all))
	}
}

// TestListUsersPagination ensures that 7 users with limit 3 come as 3, 3,
// then 1 with nextCursor null, each user exactly once, in creation order,
// and that another account's users are never listed.
func TestListUsersPagination(t *testing.T) {
	f := newFixture(t)
	// The other account has users too; none may appear.
	var foreign []string
	for i := range 3 {
		r := f.h.create(apitest.Request{Route: routeUsers, Email: f.other, Body: userBody(fmt.Sprintf("g%d@globex.test", i), "user")})
		foreign = append(foreign, r.User(t).ID)
	}
	foreign = append(foreign, f.otherID)

	admin := f.listPage(t, f.admin, nil).Items[0].ID
	want := []string{admin}
	for i := range 6 {
		want = append(want, f.user(t, fmt.Sprintf("p%d@acme.test", i)))
	}
	pages := f.listAll(t, f.admin, map[string]string{"limit": "3"})
	if len(pages) != 3 || len(pages[0]) != 3 || len(pages[1]) != 3 || len(pages[2]) != 1 {
		t.Fatalf("pages %v, want 3+3+1", pages)
	}
	if got := flatten(pages); !slices.Equal(got, want) {
		t.Fatalf("users %v, want %v (creation order, each once)", got, want)
	}
	// Exactly 6 with limit 3: the second page is the last one.
	if pages := f.listAll(t, f.admin, map[string]string{"limit": "7"}); len(pages) != 1 || len(pages[0]) != 7 {
		t.Fatalf("limit 7 over 7 users: pages %v, want one page and nextCursor null", pages)
	}
	for _, p := range f.listAll(t, f.admin, map[string]string{"limit": "1"}) {
		for _, id := range p {
			if slices.Contains(foreign, id) {
				t.Fatalf("user %s of another account listed", id)
			}
		}
	}
	// And the other account sees only its own.
	got := flatten(f.listAll(t, f.other, map[string]string{"limit": "2"}))
	sort.Strings(got)
	sort.Strings(foreign)
	if !slices.Equal(got, foreign) {
		t.Fatalf("other account lists %v, want %v", got, foreign)
	}
}

// TestListUsersFilters ensures license= and status= filters, alone,
// combined, and paged with small limits, return exactly the matching users
// in creation order; unknown values answer 400.
func TestListUsersFilters(t *testing.T) {
	f := newFixture(t)
	f.MustLicenses(t, f.acct, licadmin.Advanced, 1)
	admin := f.listPage(t, f.admin, nil).Items[0].ID
	u := make([]string, 7)
	u[0] = admin
	for i := 1; i <= 6; i++ {
		u[i] = f.user(t, fmt.Sprintf("f%d@acme.test", i))
	}
	for i, tier := range map[int]string{1: "eco", 2: "eco", 3: "pro", 4: "advanced"} {
		f.assign(f.admin, u[i], tier).Want(t, http.StatusOK)
	}
	for _, i := range []int{2, 4, 5} {
		setStatus(t, f.Env, u[i], licadmin.StatusActive)
	}
	// admin: none pending; 1 eco pending; 2 eco active; 3 pro pending;
	// 4 advanced active; 5 none active; 6 none pending.
	cases := []struct {
		license, status string
		want            []int
	}{
		{"", "", []int{0, 1, 2, 3, 4, 5, 6}},
		{"none", "", []int{0, 5, 6}},
		{"eco", "", []int{1, 2}},
		{"advanced", "", []int{4}},
		{"pro", "", []int{3}},
		{"", "pending", []int{0, 1, 3, 6}},
		{"", "active", []int{2, 4, 5}},
		{"none", "pending", []int{0, 6}},
		{"eco", "active", []int{2}},
		{"eco", "pending", []int{1}},
		{"pro", "active", nil},
	}
	for _, c := range cases {
		q := map[string]string{}
		if c.license != "" {
			q["license"] = c.license
		}
		if c.status != "" {
			q["status"] = c.status
		}
		var want []string
		for _, i := range c.want {
			want = append(want, u[i])
		}
		for _, limit := range []string{"", "1", "2", "50"} {
			t.Run(fmt.Sprintf("license=%s,status=%s,limit=%s", c.license, c.status, limit), func(t *testing.T) {
				q := copyQuery(q)
				if limit != "" {
					q["limit"] = limit
				}
				pages := f.listAll(t, f.admin, q)
				if got := flatten(pages); !slices.Equal(got, want) {
					t.Fatalf("users %v, want %v", got, want)
				}
				if n := len(pages); len(want) > 0 && n > 1 && len(pages[n-1]) == 0 {
					t.Fatalf("pages %v end with an empty page", pages)
				}
			})
		}
	}
	for _, q := range []map[string]string{{"license": "gold"}, {"license": "NONE"}, {"status": "deleted"}, {"status": "Active"}, {"license": "eco", "status": "x"}} {
		f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: q}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
}

// copyQuery returns a copy of m.
func copyQuery(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestListUsersCursor ensures cursors are tamper-evident and bound to the
// caller and the filters: an edited, forged or truncated cursor, one
// replayed by another admin of the same account or of another account, or
// with other filters, answers 400 validation_failed on "cursor".
func TestListUsersCursor(t *testing.T) {
	f := newFixture(t)
	admin2 := "second.admin@acme.test"
	f.userAs(t, f.admin, admin2, "admin")
	for i := range 4 {
		f.user(t, fmt.Sprintf("c%d@acme.test", i))
	}
	first := f.listPage(t, f.admin, map[string]string{"limit": "2"})
	if first.NextCursor == nil {
		t.Fatal("no cursor after the first page of 6 users")
	}
	c := *first.NextCursor
	if strings.Contains(c, "USER") || strings.Contains(c, first.Items[1].ID) {
		t.Fatalf("cursor %q is readable: it must be opaque", c)
	}
	// The valid cursor works for its issuer.
	if p := f.listPage(t, f.admin, map[string]string{"limit": "2", "cursor": c}); len(p.Items) != 2 || p.Items[0].ID == first.Items[0].ID {
		t.Fatalf("second page %v", p.Items)
	}

	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatalf("cursor %q is not base64url: %v", c, err)
	}
	// flip changes one byte of the sealed cursor at i.
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := []struct {
		name, caller, cursor string
		query                map[string]string
	}{
		{"nonce edited", f.admin, flip(0), nil},
		{"sealed position edited", f.admin, flip(len(raw) / 2), nil},
		{"tag edited", f.admin, flip(len(raw) - 1), nil},
		{"truncated", f.admin, base64.RawURLEncoding.EncodeToString(raw[:len(raw)-4]), nil},
		{"garbage", f.admin, "not a cursor", nil},
		{"not base64", f.admin, "!!!.???", nil},
		{"too long", f.admin, strings.Repeat("A", 3000), nil},
		{"another admin of the account", admin2, c, nil},
		{"admin of another account", f.other, c, nil},
		{"with a license filter", f.admin, c, map[string]string{"license": "none"}},
		{"with a status filter", f.admin, c, map[string]string{"status": "pending"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := copyQuery(tc.query)
			q["limit"] = "2"
			q["cursor"] = tc.cursor
			p := f.h.list(apitest.Request{Route: routeList, Email: tc.caller, Query: q}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
			if got := fields(p); !slices.Equal(got, []string{"cursor:invalid_cursor"}) {
				t.Fatalf("errors %v, want cursor:invalid_cursor", got)
			}
		})
	}
	// A cursor issued with filters is refused without them.
	fc := f.listPage(t, f.admin, map[string]string{"limit": "1", "status": "pending"}).NextCursor
	if fc == nil {
		t.Fatal("no cursor for the filtered list")
	}
	f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: map[string]string{"limit": "1", "cursor": *fc}}).
		WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
}
