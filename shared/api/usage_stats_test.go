package api_test

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/stats"
	"licenseadmin/shared/usage"
)

// statsRow is one item of GET /v1/stats.
type statsRow struct {
	UserID    string
	Email     string
	FirstName string
	License   *licadmin.Tier
	Status    licadmin.Status
	licadmin.Usage
}

type statsPage struct {
	From, To   string
	Pool       []licadmin.TierPool
	Users      licadmin.UserCounts
	Items      []statsRow
	NextCursor *string
}

func (f *usageFixture) accountStats(t *testing.T, query map[string]string) statsPage {
	t.Helper()
	r := f.stats(apitest.Request{Route: routeStats, Email: f.admin, Query: query})
	r.Want(t, http.StatusOK)
	wantKeys(t, []byte(r.Body), "from", "to", "pool", "users", "items", "nextCursor")
	var p statsPage
	r.Decode(t, &p)
	return p
}

// statsWorld is an account whose users and usage the test knows: the
// admin (active, no license), ada (active, eco), bob (pending, pro), and
// cat (pending, no license, a formula as first name), with events this
// month and last month.
type statsWorld struct {
	*usageFixture
	cat             string
	thisMonth, last string
	inMonth, inLast func(i int) time.Time
	adaNow, adaBoth licadmin.Usage
	bobNow          licadmin.Usage
}

func newStatsWorld(t *testing.T) *statsWorld {
	t.Helper()
	w := &statsWorld{usageFixture: newUsageFixture(t)}
	f := w.usageFixture
	r := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: map[string]string{
		"email": "cat@acme.test", "firstName": "=1+2", "lastName": "@Cat", "language": "fr"}})
	r.Want(t, http.StatusCreated)
	w.cat = r.User(t).ID
	adminID := f.listAll(t, f.admin, nil)[0][0]
	setStatus(t, f.Env, adminID, licadmin.StatusActive)
	setStatus(t, f.Env, f.ada, licadmin.StatusActive)
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.assign(f.admin, f.bob, "pro").Want(t, http.StatusOK)

	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	w.thisMonth, w.last = start.Format("2006-01"), start.AddDate(0, -1, 0).Format("2006-01")
	// Strictly between the month's start and now, and inside last month.
	w.inMonth = func(i int) time.Time { return start.Add(now.Sub(start) * time.Duration(i) / 20) }
	w.inLast = func(i int) time.Time { return start.Add(-time.Duration(i) * time.Hour) }
	sent := func(email string, at time.Time, bytes int64) usage.Message {
		m := event(f.acct, email, licadmin.EventSent, at)
		m.Bytes = bytes
		return m
	}
	ingest(t, f.Env,
		sent(f.adaEmail, w.inMonth(1), 100), sent(f.adaEmail, w.inMonth(2), 200), sent(f.adaEmail, w.inMonth(3), 300),
		event(f.acct, f.adaEmail, licadmin.EventOpened, w.inMonth(4)), event(f.acct, f.adaEmail, licadmin.EventOpened, w.inMonth(5)),
		event(f.acct, f.adaEmail, licadmin.EventSigned, w.inMonth(6)),
		sent(f.adaEmail, w.inLast(5), 50), event(f.acct, f.adaEmail, licadmin.EventDownloaded, w.inLast(6)),
		event(f.acct, f.bobEmail, licadmin.EventOpened, w.inMonth(7)),
	)
	// Worked out by hand.
	w.adaNow = licadmin.Usage{Counters: licadmin.Counters{Sent: 3, BytesSent: 600, Opens: 2, Signed: 1}, OpenRatio: 0.6667, SignatureRatio: 0.3333}
	w.adaBoth = licadmin.Usage{Counters: licadmin.Counters{Sent: 4, BytesSent: 650, Opens: 2, Downloads: 1, Signed: 1}, OpenRatio: 0.5, SignatureRatio: 0.25}
	w.bobNow = licadmin.Usage{Counters: licadmin.Counters{Opens: 1}}
	return w
}

// TestStats ensures GET /v1/stats answers the pool, the user counts and
// each user's usage for the period as worked out by hand, defaulting to
// the current month, paginated by user with stable counts.
func TestStats(t *testing.T) {
	w := newStatsWorld(t)
	p := w.accountStats(t, nil)
	if p.From != w.thisMonth || p.To != w.thisMonth {
		t.Fatalf("period %s..%s, want the current month %s", p.From, p.To, w.thisMonth)
	}
	if want := (licadmin.UserCounts{Total: 4, Active: 2, Pending: 2, Unlicensed: 2}); p.Users != want {
		t.Fatalf("user counts %+v, want %+v", p.Users, want)
	}
	if len(p.Pool) != 3 || p.Pool[0].Tier != licadmin.Eco || p.Pool[0].Purchased != 2 || p.Pool[0].Assigned != 1 || p.Pool[2].Assigned != 1 {
		t.Fatalf("pool %+v, want eco 2/1, pro 1/1", p.Pool)
	}
	byUser := func(p statsPage) map[string]statsRow {
		m := map[string]statsRow{}
		for _, r := range p.Items {
			m[r.UserID] = r
		}
		return m
	}
	rows := byUser(p)
	if len(rows) != 4 || p.NextCursor != nil {
		t.Fatalf("%d rows (cursor %v), want the 4 users on one page", len(rows), p.NextCursor)
	}
	if got := rows[w.ada]; got.Usage != w.adaNow || got.License == nil || *got.License != licadmin.Eco || got.Status != licadmin.StatusActive || got.Email != w.adaEmail {
		t.Fatalf("ada this month %+v, want %+v, eco, active", got, w.adaNow)
	}
	if got := rows[w.bob].Usage; got != w.bobNow {
		t.Fatalf("bob this month %+v, want %+v (ratios 0 when nothing was sent)", got, w.bobNow)
	}
	if got := rows[w.cat]; got.Usage != (licadmin.Usage{}) || got.License != nil {
		t.Fatalf("cat %+v, want no usage and no license", got)
	}

	both := byUser(w.accountStats(t, map[string]string{"from": w.last, "to": w.thisMonth}))
	if got := both[w.ada].Usage; got != w.adaBoth {
		t.Fatalf("ada over two months %+v, want %+v", got, w.adaBoth)
	}
	if got := byUser(w.accountStats(t, map[string]string{"from": w.last, "to": w.last}))[w.ada].Usage; got.Sent != 1 || got.Downloads != 1 || got.OpenRatio != 0 {
		t.Fatalf("ada last month %+v, want 1 sent, 1 download", got)
	}

	// Pages of 3: every user once, the same counts on every page.
	first := w.accountStats(t, map[string]string{"limit": "3", "from": w.last})
	if first.NextCursor == nil || len(first.Items) != 3 {
		t.Fatalf("first page: %d rows, cursor %v", len(first.Items), first.NextCursor)
	}
	second := w.accountStats(t, map[string]string{"limit": "3", "from": w.last, "cursor": *first.NextCursor})
	if second.NextCursor != nil || len(second.Items) != 1 || second.Users != first.Users || second.From != w.last {
		t.Fatalf("second page %+v", second)
	}
	seen := map[string]bool{}
	for _, r := range append(first.Items, second.Items...) {
		seen[r.UserID] = true
	}
	if len(seen) != 4 {
		t.Fatalf("pages cover %d users, want 4", len(seen))
	}
	w.stats(apitest.Request{Route: routeStats, Email: w.admin, Query: map[string]string{"limit": "3", "cursor": *first.NextCursor}}).
		WantProblem(t, http.StatusBadRequest, licadmin.EINVALID) // issued for another period

	bad := []map[string]string{
		{"from": "2026-13"}, {"to": "november"}, {"from": w.thisMonth, "to": w.last}, {"from": "2020-01", "to": "2021-01"},
		{"format": "xml"}, {"limit": "201"}, {"limit": "0"}, {"format": "csv", "limit": "1001"},
	}
	for _, q := range bad {
		w.stats(apitest.Request{Route: routeStats, Email: w.admin, Query: q}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
}

// TestStatsCSV ensures the CSV form is a spreadsheet of one row per user,
// with every formula-like cell neutralised and the next page's cursor in
// Next-Cursor.
func TestStatsCSV(t *testing.T) {
	w := newStatsWorld(t)
	r := w.stats(apitest.Request{Route: routeStats, Email: w.admin, Query: map[string]string{"format": "csv", "from": w.last}})
	r.Want(t, http.StatusOK)
	if ct := r.Headers["Content-Type"]; ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := r.Headers["Content-Disposition"]; !strings.HasPrefix(cd, "attachment;") {
		t.Fatalf("Content-Disposition %q", cd)
	}
	text, ok := strings.CutPrefix(r.Body, "\uFEFF")
	if !ok {
		t.Fatal("no UTF-8 BOM")
	}
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], stats.CSVHeader) || len(recs) != 5 {
		t.Fatalf("CSV %q, want the header and 4 users", recs)
	}
	byUser := map[string][]string{}
	for _, rec := range recs[1:] {
		byUser[rec[0]] = rec
	}
	if got, want := byUser[w.ada], []string{w.ada, w.adaEmail, "Ada", "Lovelace", "eco", "active", "4", "650", "2", "1", "1", "0.5", "0.25"}; !slices.Equal(got, want) {
		t.Fatalf("ada's row %q, want %q", got, want)
	}
	if got, want := byUser[w.cat], []string{w.cat, "cat@acme.test", "'=1+2", "'@Cat", "none", "pending", "0", "0", "0", "0", "0", "0", "0"}; !slices.Equal(got, want) {
		t.Fatalf("cat's row %q, want %q (formulas neutralised)", got, want)
	}
	if _, ok := r.Headers["Next-Cursor"]; ok {
		t.Fatal("Next-Cursor on the last page")
	}
	r = w.stats(apitest.Request{Route: routeStats, Email: w.admin, Query: map[string]string{"format": "csv", "limit": "2"}})
	r.Want(t, http.StatusOK)
	if r.Headers["Next-Cursor"] == "" {
		t.Fatal("no Next-Cursor on a first page of 2 of 4")
	}
	r = w.stats(apitest.Request{Route: routeStats, Email: w.admin, Query: map[string]string{"format": "csv", "limit": "2", "cursor": r.Headers["Next-Cursor"]}})
	if recs, _ := csv.NewReader(strings.NewReader(strings.TrimPrefix(r.Body, "\uFEFF"))).ReadAll(); len(recs) != 3 {
		t.Fatalf("second CSV page %q, want the header and 2 users", recs)
	}
}

// TestUserStats ensures GET /v1/users/{userId}/stats answers one user's
// usage for the period, in total and month by month (zero months too).
func TestUserStats(t *testing.T) {
	w := newStatsWorld(t)
	r := w.userStats(apitest.Request{Route: routeUserStats, Params: map[string]string{"userId": w.ada}, Email: w.admin,
		Query: map[string]string{"from": w.last, "to": w.thisMonth}})
	r.Want(t, http.StatusOK)
	var got struct {
		UserID, From, To string
		licadmin.Usage
		Months []struct {
			Month string
			licadmin.Usage
		}
	}
	r.Decode(t, &got)
	if got.UserID != w.ada || got.From != w.last || got.To != w.thisMonth || got.Usage != w.adaBoth {
		t.Fatalf("ada %+v, want %+v over %s..%s", got, w.adaBoth, w.last, w.thisMonth)
	}
	if len(got.Months) != 2 || got.Months[0].Month != w.last || got.Months[1].Month != w.thisMonth || got.Months[1].Usage != w.adaNow {
		t.Fatalf("months %+v", got.Months)
	}
	// Default: the current month; a user without usage has zeros.
	r = w.userStats(userReq(routeUserStats, w.admin, w.cat, nil))
	r.Decode(t, &got)
	if got.Usage != (licadmin.Usage{}) || len(got.Months) != 1 || got.Months[0].Month != w.thisMonth {
		t.Fatalf("cat %+v, want zeros for the current month", got)
	}
	for _, q := range []map[string]string{{"from": "x"}, {"from": "2024-01", "to": "2025-06"}} {
		w.userStats(apitest.Request{Route: routeUserStats, Params: map[string]string{"userId": w.ada}, Email: w.admin, Query: q}).
			WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
}

// TestStatsReadsIndependentOfLogs ensures statistics never read log
// entries: the DynamoDB requests and the items they return are the same
// before and after 150 more log entries (docs/api.md: counters, not scans).
func TestStatsReadsIndependentOfLogs(t *testing.T) {
	w := newStatsWorld(t)
	c := w.countReads()
	measure := func() (string, string) {
		c.reset()
		w.accountStats(t, map[string]string{"from": w.last})
		account := c.snapshot()
		c.reset()
		w.userStats(apitest.Request{Route: routeUserStats, Params: map[string]string{"userId": w.ada}, Email: w.admin,
			Query: map[string]string{"from": w.last}}).Want(t, http.StatusOK)
		return account, c.snapshot()
	}
	account, user := measure()
	var msgs []any
	for i := range 150 {
		msgs = append(msgs, event(w.acct, []string{w.adaEmail, w.bobEmail}[i%2], licadmin.EventTypes[i%4], w.inMonth(1+i%15)))
	}
	ingest(t, w.Env, msgs...)
	account2, user2 := measure()
	if account != account2 || user != user2 {
		t.Fatalf("reads grew with the log:\n GET /v1/stats       %s -> %s\n GET /v1/users/…/stats %s -> %s", account, account2, user, user2)
	}
	if n := countItems(t, w.Env, "LOG#", ""); n < 150 {
		t.Fatalf("%d log entries, want at least 150", n)
	}
}
