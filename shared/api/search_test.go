package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// searchFixture is the fixture of license_test.go with users to search.
type searchFixture struct {
	*xfixture
	ids map[string]string // email -> id
}

func newSearchFixture(t *testing.T) *searchFixture {
	t.Helper()
	f := &searchFixture{xfixture: newXFixture(t), ids: map[string]string{}}
	for _, u := range []struct{ email, first, last string }{
		{"jane.doe@acme.test", "Jane", "Doe"},
		{"jan.k@acme.test", "Karl", "Kowalski"},
		{"p.jansen@acme.test", "Piet", "Jansen"},
		{"elodie@acme.test", "Élodie", "Dörr"},
		{"bob@acme.test", "Bob", "Smith"},
		{"zoe@gmail.com", "Zoë", "JANVIER"},
	} {
		r := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{
			"email": u.email, "firstName": u.first, "lastName": u.last}})
		f.ids[u.email] = r.User(t).ID
	}
	// Another account's Jane must never be found.
	f.h.create(apitest.Request{Route: routeUsers, Email: f.other, Body: map[string]string{
		"email": "jane@globex.test", "firstName": "Jane", "lastName": "Doe"}}).Want(t, http.StatusCreated)
	return f
}

// search returns the emails of every user found by q (with more query
// parameters), following nextCursor, in the order returned.
func (f *searchFixture) search(t *testing.T, q string, more map[string]string) []string {
	t.Helper()
	query := copyQuery(more)
	query["q"] = q
	var emails []string
	for _, us := range f.pages(t, f.admin, query) {
		for _, u := range us {
			emails = append(emails, u.Email)
		}
	}
	return emails
}

// TestSearchUsers ensures q finds users by a case- and accent-insensitive
// prefix of their email, first name or last name, each user once, in the
// order of the matching text, only in the caller's account; and that
// pages of any size add up to the same users.
func TestSearchUsers(t *testing.T) {
	f := newSearchFixture(t)
	cases := []struct {
		q    string
		want []string // in order
	}{
		// jan.k (email), jane.doe (email "jane.doe@…" > first name "jane"),
		// Jansen, Janvier.
		{"jan", []string{"jan.k@acme.test", "jane.doe@acme.test", "p.jansen@acme.test", "zoe@gmail.com"}},
		{"JAN", []string{"jan.k@acme.test", "jane.doe@acme.test", "p.jansen@acme.test", "zoe@gmail.com"}},
		{"jane", []string{"jane.doe@acme.test"}},
		{"dö", []string{"jane.doe@acme.test", "elodie@acme.test"}},
		{"Do", []string{"jane.doe@acme.test", "elodie@acme.test"}},
		{"élo", []string{"elodie@acme.test"}},
		{"ELODIE@ACME", []string{"elodie@acme.test"}},
		{"zoë", []string{"zoe@gmail.com"}},
		{"jan.k@acme.test", []string{"jan.k@acme.test"}},
		{"  Bob ", []string{"bob@acme.test"}},
		{"smi", []string{"bob@acme.test"}},
		{"acme.test", nil}, // the domain is not a prefix of the email
		{"xyz", nil},
		{"jane doe", nil}, // one field's prefix, not a full name
	}
	for _, c := range cases {
		for _, limit := range []string{"1", "2", "50"} {
			t.Run(fmt.Sprintf("q=%s,limit=%s", c.q, limit), func(t *testing.T) {
				if got := f.search(t, c.q, map[string]string{"limit": limit}); !slices.Equal(got, c.want) {
					t.Fatalf("found %v, want %v", got, c.want)
				}
			})
		}
	}
	// Returned users are whole users, as the plain list shows them.
	p := f.listPage(t, f.admin, map[string]string{"q": "jane"})
	if len(p.Items) != 1 || p.NextCursor != nil {
		t.Fatalf("q=jane: %+v", p)
	}
	g, _ := f.getUser(t, f.ids["jane.doe@acme.test"])
	if got := p.Items[0]; got.ID != g.ID || got.FirstName != "Jane" || got.LastName != "Doe" || got.Role != g.Role || got.Status != g.Status || !got.CreatedAt.Equal(g.CreatedAt) {
		t.Fatalf("found %+v, want %+v", got, g)
	}
	// The other account finds its own Jane only.
	r := f.h.list(apitest.Request{Route: routeList, Email: f.other, Query: map[string]string{"q": "jane"}})
	var op page
	r.Decode(t, &op)
	if len(op.Items) != 1 || op.Items[0].Email != "jane@globex.test" {
		t.Fatalf("the other account found %+v", op.Items)
	}
	// An empty or blank q lists every user, as without q.
	all := f.listPage(t, f.admin, nil)
	for _, q := range []string{"", "   "} {
		if got := f.listPage(t, f.admin, map[string]string{"q": q}); len(got.Items) != len(all.Items) {
			t.Fatalf("q=%q: %d users, want all %d", q, len(got.Items), len(all.Items))
		}
	}
}

// TestSearchUsersWithFilters ensures q combines with license= and status=:
// the users found are those of the search that pass the filters.
func TestSearchUsersWithFilters(t *testing.T) {
	f := newSearchFixture(t)
	f.assign(f.admin, f.ids["jane.doe@acme.test"], "eco").Want(t, http.StatusOK)
	f.assign(f.admin, f.ids["zoe@gmail.com"], "pro").Want(t, http.StatusOK)
	setStatus(t, f.Env, f.ids["p.jansen@acme.test"], licadmin.StatusActive)
	setStatus(t, f.Env, f.ids["jane.doe@acme.test"], licadmin.StatusActive)
	for _, c := range []struct {
		query map[string]string
		want  []string
	}{
		{map[string]string{"license": "eco"}, []string{"jane.doe@acme.test"}},
		{map[string]string{"license": "pro"}, []string{"zoe@gmail.com"}},
		{map[string]string{"license": "none"}, []string{"jan.k@acme.test", "p.jansen@acme.test"}},
		{map[string]string{"license": "advanced"}, nil},
		{map[string]string{"status": "active"}, []string{"jane.doe@acme.test", "p.jansen@acme.test"}},
		{map[string]string{"status": "pending"}, []string{"jan.k@acme.test", "zoe@gmail.com"}},
		{map[string]string{"status": "active", "license": "none"}, []string{"p.jansen@acme.test"}},
		{map[string]string{"status": "pending", "license": "eco"}, nil},
	} {
		for _, limit := range []string{"1", "50"} {
			q := copyQuery(c.query)
			q["limit"] = limit
			if got := f.search(t, "jan", q); !slices.Equal(got, c.want) {
				t.Errorf("q=jan %v: found %v, want %v", q, got, c.want)
			}
		}
	}
}

// TestSearchFollowsChanges ensures the search never drifts from the users:
// an edited name, a changed email, a deleted user and a user created or
// imported are found (or not) at once.
func TestSearchFollowsChanges(t *testing.T) {
	f := newSearchFixture(t)
	jane := f.ids["jane.doe@acme.test"]
	_, etag := f.getUser(t, jane)
	f.patch(f.admin, jane, map[string]string{"firstName": "Ingrid", "lastName": "Ödegaard", "email": "ingrid@acme.test"},
		map[string]string{"If-Match": etag}).Want(t, http.StatusOK)
	for q, want := range map[string][]string{
		"jane": nil, "doe": nil, "ingrid": {"ingrid@acme.test"}, "odeg": {"ingrid@acme.test"},
		"jan": {"jan.k@acme.test", "p.jansen@acme.test", "zoe@gmail.com"},
	} {
		if got := f.search(t, q, nil); !slices.Equal(got, want) {
			t.Errorf("after the edit, q=%s found %v, want %v", q, got, want)
		}
	}
	f.deleteUser(userReq(routeDeleteUser, f.admin, f.ids["jan.k@acme.test"], nil)).Want(t, http.StatusNoContent)
	if got := f.search(t, "jan", nil); !slices.Equal(got, []string{"p.jansen@acme.test", "zoe@gmail.com"}) {
		t.Errorf("after the delete, q=jan found %v", got)
	}
	f.user(t, "janet@acme.test")
	if got := f.search(t, "jan", nil); !slices.Equal(got, []string{"janet@acme.test", "p.jansen@acme.test", "zoe@gmail.com"}) {
		t.Errorf("after a create, q=jan found %v", got)
	}
}

// TestSearchFindsImportedUsers ensures users created by a CSV import are
// found like any other.
func TestSearchFindsImportedUsers(t *testing.T) {
	f := newImportFixture(t)
	imp := f.importCSV(t, "email,first_name,last_name,language,license\njanine@acme.test,Janine,Müller,fr,\nmax@acme.test,Max,Jäger,en,eco\n", false)
	wantCounts(t, imp, licadmin.ImportDone, 2, 2, 0, 0)
	list := api.ListUsers(f.App)
	for q, want := range map[string]string{"jan": "janine@acme.test", "mull": "janine@acme.test", "jag": "max@acme.test"} {
		r := apitest.Do(t, list, apitest.Request{Route: routeList, Email: f.admin, Query: map[string]string{"q": q}})
		var p page
		r.Decode(t, &p)
		if len(p.Items) != 1 || p.Items[0].Email != want {
			t.Errorf("q=%s found %+v, want %s", q, p.Items, want)
		}
	}
}

// TestSearchPagesAreBounded ensures a search reads a bounded number of
// items per request and says where to continue: a filter that drops
// almost every user found still answers each page after at most
// 3 rounds of 3 Queries, and following the cursors finds exactly the
// matching users, each once.
func TestSearchPagesAreBounded(t *testing.T) {
	opt, calls := apitest.Faults(nil)
	env := apitest.New(t, opt)
	admin := "admin@acme.test"
	env.MustAccount(t, "Acme", admin)
	create, list := api.CreateUser(env.App), api.ListUsers(env.App)
	var want []string
	for i := range 230 {
		r := apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: admin, Body: map[string]string{
			"email": fmt.Sprintf("max%03d@acme.test", i), "firstName": "Max", "lastName": fmt.Sprintf("Maxwell %03d", i)}})
		id := r.User(t).ID
		if i%75 == 0 {
			setStatus(t, env, id, licadmin.StatusActive)
			want = append(want, fmt.Sprintf("max%03d@acme.test", i))
		}
	}
	query := map[string]string{"q": "max", "status": "active", "limit": "1"}
	var got []string
	pages, short := 0, 0
	for ; pages < 100; pages++ {
		calls.Reset()
		r := apitest.Do(t, list, apitest.Request{Route: routeList, Email: admin, Query: query})
		var p page
		r.Decode(t, &p)
		if n := calls.Get("Query"); n > 9 {
			t.Fatalf("page %d: %d Queries, want at most 3 rounds of 3", pages, n)
		}
		for _, u := range p.Items {
			got = append(got, u.Email)
		}
		if len(p.Items) == 0 {
			short++
		}
		if p.NextCursor == nil {
			break
		}
		query["cursor"] = *p.NextCursor
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v", got, want)
	}
	// 230 users × 3 entries, 100 evaluated per Query: some pages end
	// early, empty, with a cursor.
	if short == 0 {
		t.Fatalf("no page ended early in %d pages: the reads were not bounded", pages)
	}
}

// TestSearchValidation ensures a too long q answers 400 on "q", and a
// cursor of a search is refused for another search or the plain list.
func TestSearchValidation(t *testing.T) {
	f := newSearchFixture(t)
	p := f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: map[string]string{"q": strings.Repeat("é", 101)}}).
		WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	if got := fields(p); !slices.Equal(got, []string{"q:too_long"}) {
		t.Fatalf("errors %v, want q:too_long", got)
	}
	f.listPage(t, f.admin, map[string]string{"q": strings.Repeat("é", 100)})
	first := f.listPage(t, f.admin, map[string]string{"q": "jan", "limit": "1"})
	if first.NextCursor == nil {
		t.Fatal("no cursor after the first of 4 users found")
	}
	// The same search, typed otherwise, continues it.
	f.listPage(t, f.admin, map[string]string{"q": "JÄN", "limit": "1", "cursor": *first.NextCursor})
	for _, q := range []map[string]string{{"q": "ja"}, {}, {"q": "jan", "status": "active"}} {
		q["limit"], q["cursor"] = "1", *first.NextCursor
		p := f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: q}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
		if got := fields(p); !slices.Equal(got, []string{"cursor:invalid_cursor"}) {
			t.Fatalf("%v: errors %v, want cursor:invalid_cursor", q, got)
		}
	}
}
