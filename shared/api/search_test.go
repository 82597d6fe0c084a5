package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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
// parameters), following nextCursor, in the order returned, once the
// table's stream has delivered every change so far to the search index.
func (f *searchFixture) search(t *testing.T, q string, more map[string]string) []string {
	t.Helper()
	f.DeliverUsageStream(t)
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
	f.DeliverUsageStream(t)
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

// rawUsers returns a 200 list page's users as the body holds them, in
// order, each with its id, after checking the page's shape and that it
// is JSON.
func rawUsers(t *testing.T, r *apitest.Response) (ids []string, raws []string) {
	t.Helper()
	var p struct {
		Items []json.RawMessage `json:"items"`
	}
	r.Page(t, &p)
	if ct := r.Headers["Content-Type"]; ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	for _, raw := range p.Items {
		var u struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &u); err != nil {
			t.Fatal(err)
		}
		ids, raws = append(ids, u.ID), append(raws, string(raw))
	}
	return ids, raws
}

// TestSearchAnswersAsTheList ensures a search page shows each user byte
// for byte as the plain list does (the index holds the user's JSON, which
// the page writes out as it is), whatever the user holds (a license, a
// mobile number and a time zone, characters JSON escapes); and that
// entries written for another view version (by an older release, or a
// later one) are answered from the users' items instead, the same bytes,
// a user deleted since being left out.
func TestSearchAnswersAsTheList(t *testing.T) {
	f := newSearchFixture(t)
	odd := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{
		"email": "jan.o@acme.test", "firstName": `Jan "<&>" \ é`, "lastName": "O'Brien\u2028"}}).User(t).ID
	f.patch(f.admin, odd, map[string]string{"mobile": "+33612345678", "timeZone": "Europe/Paris"}, nil).Want(t, http.StatusOK)
	f.assign(f.admin, f.ids["jane.doe@acme.test"], "eco").Want(t, http.StatusOK)
	f.DeliverUsageStream(t)
	listIDs, listRaws := rawUsers(t, f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: map[string]string{"limit": "200"}}))
	listed := map[string]string{}
	for i, id := range listIDs {
		listed[id] = listRaws[i]
	}
	search := func(want ...string) {
		t.Helper()
		var got []string
		query := map[string]string{"q": "JAN", "limit": "2"}
		for range 10 {
			r := f.h.list(apitest.Request{Route: routeList, Email: f.admin, Query: query})
			ids, raws := rawUsers(t, r)
			for i, id := range ids {
				if raws[i] != listed[id] {
					t.Errorf("user %s found as\n%s\nlisted as\n%s", id, raws[i], listed[id])
				}
				got = append(got, id)
			}
			var p page
			r.Decode(t, &p)
			if p.NextCursor == nil {
				break
			}
			query["cursor"] = *p.NextCursor
		}
		if !slices.Equal(got, want) {
			t.Fatalf("found %v, want %v", got, want)
		}
	}
	jane, janK, janO, jansen, zoe := f.ids["jane.doe@acme.test"], f.ids["jan.k@acme.test"], odd, f.ids["p.jansen@acme.test"], f.ids["zoe@gmail.com"]
	search(janO, janK, jane, jansen, zoe) // "jan \"<&>…" sorts first

	// Entries of other view versions: Jane's as an older release wrote
	// them (no view), Zoë's as a later release might (another version,
	// another view), Jan K's old too, and Jan K deleted before the stream
	// delivered it.
	for _, it := range f.Scan(t) {
		pk, sk := avString(it["pk"]), avString(it["sk"])
		if !strings.HasPrefix(pk, "SEARCH#"+f.acct+"#") {
			continue
		}
		update := ""
		switch {
		case strings.HasSuffix(sk, jane), strings.HasSuffix(sk, janK):
			update = "REMOVE #v, #vv"
		case strings.HasSuffix(sk, zoe):
			update = "SET #v = :v, #vv = :vv"
		default:
			continue
		}
		in := &dynamodb.UpdateItemInput{
			TableName:                aws.String(f.Table),
			Key:                      map[string]types.AttributeValue{"pk": it["pk"], "sk": it["sk"]},
			UpdateExpression:         aws.String(update),
			ExpressionAttributeNames: map[string]string{"#v": "view", "#vv": "viewVersion"},
		}
		if strings.HasPrefix(update, "SET") {
			in.ExpressionAttributeValues = map[string]types.AttributeValue{
				":v": &types.AttributeValueMemberS{Value: `{"id":"` + zoe + `","next":true}`}, ":vv": &types.AttributeValueMemberN{Value: "999"}}
		}
		if _, err := f.DB.UpdateItem(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	f.deleteUser(userReq(routeDeleteUser, f.admin, janK, nil)).Want(t, http.StatusNoContent)
	search(janO, jane, jansen, zoe)
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
// imported are found (or not) once the table's stream has delivered the
// change (search's helper delivers it).
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
	f.SearchIndexInvariant(t) // search's helper delivered the stream
}

// TestSearchFindsImportedUsers ensures users created by a CSV import are
// found like any other.
func TestSearchFindsImportedUsers(t *testing.T) {
	f := newImportFixture(t)
	imp := f.importCSV(t, "email,first_name,last_name,language,license\njanine@acme.test,Janine,Müller,fr,\nmax@acme.test,Max,Jäger,en,eco\n", false)
	wantCounts(t, imp, licadmin.ImportDone, 2, 2, 0, 0)
	f.DeliverUsageStream(t)
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
// almost every user found still answers each page after reading at most
// the store's read budget (lowered here to 200 items: two Queries of
// 100), and following the cursors finds exactly the matching users, each
// once, although each has three entries that start with the search.
func TestSearchPagesAreBounded(t *testing.T) {
	opt, calls := apitest.Faults(nil)
	env := apitest.New(t, opt)
	env.App.Store.MaxItemsRead = 200
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
	env.DeliverUsageStream(t)
	query := map[string]string{"q": "max", "status": "active", "limit": "1"}
	var got []string
	pages, short := 0, 0
	for ; pages < 100; pages++ {
		calls.Reset()
		r := apitest.Do(t, list, apitest.Request{Route: routeList, Email: admin, Query: query})
		var p page
		r.Decode(t, &p)
		if n := calls.Get("Query"); n > 2 {
			t.Fatalf("page %d: %d Queries, want at most 2 (200 items read)", pages, n)
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
	// 230 users × 3 entries, 200 evaluated per page: some pages end
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
	f.DeliverUsageStream(t)
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

// TestSearchLongFoldedNames ensures a name whose folded key outgrows an
// index key (100 characters that each fold to a phrase) is indexed and
// found like any other, by its email and by the name, even searched whole
// (its fold cut like the name's), and that such a search answers a page,
// never a server error.
func TestSearchLongFoldedNames(t *testing.T) {
	f := newSearchFixture(t)
	name := strings.Repeat("\uFDFA", licadmin.MaxSearchLength)
	f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{
		"email": "long@acme.test", "firstName": name, "lastName": "Long"}}).Want(t, http.StatusCreated)
	for _, q := range []string{"long@", "\uFDFA", name} {
		if got := f.search(t, q, nil); !slices.Equal(got, []string{"long@acme.test"}) {
			t.Errorf("q %.12q...: found %v, want the user", q, got)
		}
	}
}

// TestSearchIndexRedelivered ensures the search index follows the users
// however the stream delivers their records to the recording function: a
// batch in which one user's index transaction failed (the failed user's
// first record reported, as ReportBatchItemFailures asks), delivered again
// from there and then whole; records delivered twice; old records
// delivered after newer ones (a user's creation after its rename and its
// deletion), which must not bring back what the newer ones removed; and a
// transaction whose answer was lost.
func TestSearchIndexRedelivered(t *testing.T) {
	f := newSearchFixture(t)
	mail := f.WithEmail(t)
	userRecords := func() []events.DynamoDBEventRecord {
		var recs []events.DynamoDBEventRecord
		for _, r := range mail.Next(t) {
			if strings.HasPrefix(r.Change.Keys["pk"].String(), "USER#") && r.Change.Keys["sk"].String() == "USER" {
				recs = append(recs, r)
			}
		}
		return recs
	}
	deliver := recorderDelivery(t, f.Env)
	created := userRecords()
	if resp := deliver(created); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	f.SearchIndexInvariant(t)

	// Changes of three users: a rename with a new email, a deletion, an
	// edit of the renamed user again, a license.
	jane, janK, zoe := f.ids["jane.doe@acme.test"], f.ids["jan.k@acme.test"], f.ids["zoe@gmail.com"]
	_, etag := f.getUser(t, jane)
	f.patch(f.admin, jane, map[string]string{"firstName": "Ingrid", "lastName": "Ödegaard", "email": "ingrid@acme.test"},
		map[string]string{"If-Match": etag}).Want(t, http.StatusOK)
	f.deleteUser(userReq(routeDeleteUser, f.admin, janK, nil)).Want(t, http.StatusNoContent)
	f.patch(f.admin, jane, map[string]string{"lastName": "Berg"}, nil).Want(t, http.StatusOK)
	f.assign(f.admin, zoe, "pro").Want(t, http.StatusOK)
	changes := userRecords()
	if len(changes) < 4 {
		t.Fatalf("%d user records, want at least 4", len(changes))
	}

	// One user's transaction fails: its first record is reported.
	opt, _ := apitest.Faults(func(op string, n int) apitest.Fault {
		if op == "TransactWriteItems" && n == 1 {
			return apitest.Fail
		}
		return apitest.NoFault
	})
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	failed := deliver(changes)
	f.App.Store.DB = f.App.DynamoDB
	if len(failed.BatchItemFailures) != 1 {
		t.Fatalf("batch item failures %v, want the failed user's first record", failed.BatchItemFailures)
	}
	from := slices.IndexFunc(changes, func(r events.DynamoDBEventRecord) bool {
		return r.Change.SequenceNumber == failed.BatchItemFailures[0].ItemIdentifier
	})
	if from < 0 {
		t.Fatalf("reported %s, not a record of the batch", failed.BatchItemFailures[0].ItemIdentifier)
	}
	for _, re := range []struct {
		name string
		recs []events.DynamoDBEventRecord
	}{
		{"from the failed record", changes[from:]},
		{"the whole batch again", changes},
		{"the last record alone", changes[len(changes)-1:]},
		{"the users' creation, after their changes", created},
		{"the first change alone", changes[:1]},
		{"everything, twice", append(slices.Clone(created), append(slices.Clone(changes), changes...)...)},
	} {
		if resp := deliver(re.recs); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: failures %v", re.name, resp.BatchItemFailures)
		}
		f.SearchIndexInvariant(t)
		if t.Failed() {
			t.Fatalf("after %s, the index is not the users'", re.name)
		}
	}
	if got := f.search(t, "jan", nil); !slices.Equal(got, []string{"p.jansen@acme.test", "zoe@gmail.com"}) {
		t.Fatalf("q=jan found %v", got)
	}

	// A transaction whose answer was lost: the SDK's retry commits
	// nothing twice, and the redelivery finds it applied.
	f.patch(f.admin, zoe, map[string]string{"firstName": "Jana"}, nil).Want(t, http.StatusOK)
	next := userRecords()
	lost, calls := apitest.Faults(apitest.LoseFirst("TransactWriteItems"))
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), lost)
	deliver(next)
	deliver(next)
	f.App.Store.DB = f.App.DynamoDB
	if calls.Get("lost:TransactWriteItems") != 1 {
		t.Fatal("the lost answer was not injected")
	}
	f.SearchIndexInvariant(t)
}
