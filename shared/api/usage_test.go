package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
	"licenseadmin/shared/usage"
)

// TestIngestIdempotent ensures an event delivered several times (twice in
// one batch, then again later) is one log entry and counts once.
func TestIngestIdempotent(t *testing.T) {
	f := newUsageFixture(t)
	m := event(f.acct, f.adaEmail, licadmin.EventSent, time.Now().Add(-time.Hour))
	ingest(t, f.Env, m, m)
	ingest(t, f.Env, m)
	byID := m
	byID.Email, byID.UserID = "", f.ada
	ingest(t, f.Env, byID)

	if got := refs(f.userLogs(t, f.admin, f.ada, nil).Items); !slices.Equal(got, []string{m.MessageRef}) {
		t.Fatalf("log %v, want the one entry", got)
	}
	if n := countItems(t, f.Env, "LOG#", ""); n != 1 {
		t.Fatalf("%d log items in the table, want 1", n)
	}
	r := f.userStats(userReq(routeUserStats, f.admin, f.ada, nil))
	r.Want(t, http.StatusOK)
	var s struct {
		Sent, BytesSent int64
	}
	r.Decode(t, &s)
	if s.Sent != 1 || s.BytesSent != 1000 {
		t.Fatalf("stats %+v, want 1 sent of 1000 bytes", s)
	}
}

// TestIngestPartialBatchFailure ensures a batch reports in
// batchItemFailures exactly the messages whose items DynamoDB kept leaving
// unprocessed, while the others are written, and malformed or unknown
// events are dropped rather than retried; the redelivered message then
// counts once, and so does the duplicate redelivered with it.
func TestIngestPartialBatchFailure(t *testing.T) {
	f := newUsageFixture(t)
	meter := &usageRecorder{}
	f.App.Usage.Metrics = meter
	now := time.Now().Add(-time.Minute)
	m1, m2, m3 := event(f.acct, f.adaEmail, licadmin.EventSent, now), event(f.acct, f.adaEmail, licadmin.EventOpened, now), event(f.acct, f.bobEmail, licadmin.EventSent, now)
	unknown := event(f.acct, "nobody@acme.test", licadmin.EventSent, now)

	ingest(t, f.Env, m1) // m1 is written before the fault is armed
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), leaveUnprocessed(m2.EventID))
	resp := f.Ingest(t, m1, m2, "{not json", unknown, m3)
	want := []events.SQSBatchItemFailure{{ItemIdentifier: "m2"}}
	if !slices.Equal(resp.BatchItemFailures, want) {
		t.Fatalf("batch item failures %v, want only m2 (m1 is a duplicate, m3 written, the malformed and unknown ones dropped)", resp.BatchItemFailures)
	}
	// m1 (already written) and m3 count as ingested.
	if meter.ingested != 3 || meter.dropped != 2 || meter.failed != 1 {
		t.Fatalf("usage metrics %+v: want 3 ingested (m1 twice, m3), 2 dropped, 1 failed", meter)
	}
	if got := refs(f.userLogs(t, f.admin, f.ada, nil).Items); !slices.Equal(got, []string{m1.MessageRef}) {
		t.Fatalf("ada's log %v, want only m1 before the redelivery", got)
	}
	if got := refs(f.userLogs(t, f.admin, f.bob, nil).Items); !slices.Equal(got, []string{m3.MessageRef}) {
		t.Fatalf("bob's log %v, want m3", got)
	}
	// The queue redelivers m2 (and a duplicate of m3).
	f.App.Store.DB = f.App.DynamoDB
	ingest(t, f.Env, m2, m3)
	if got := refs(f.userLogs(t, f.admin, f.ada, nil).Items); len(got) != 2 {
		t.Fatalf("ada's log %v, want m1 and m2", got)
	}
	if n := countItems(t, f.Env, "LOG#", ""); n != 3 {
		t.Fatalf("%d log items, want 3", n)
	}
	wantCounters(t, f, f.ada, licadmin.Counters{Sent: 1, BytesSent: 1000, Opens: 1})
	wantCounters(t, f, f.bob, licadmin.Counters{Sent: 1, BytesSent: 1000})
}

// leaveUnprocessed returns a DynamoDB client option with which every
// BatchWriteItem leaves the items of event id unprocessed, as DynamoDB
// does with part of a batch when a partition is throttled.
func leaveUnprocessed(id string) func(*dynamodb.Options) {
	mw := middleware.InitializeMiddlewareFunc("leaveUnprocessed", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		req, ok := in.Parameters.(*dynamodb.BatchWriteItemInput)
		if !ok {
			return next.HandleInitialize(ctx, in)
		}
		kept, left := map[string][]types.WriteRequest{}, map[string][]types.WriteRequest{}
		for table, reqs := range req.RequestItems {
			for _, r := range reqs {
				pk, sk := avString(r.PutRequest.Item["pk"]), avString(r.PutRequest.Item["sk"])
				if strings.HasSuffix(pk, "#"+id) || strings.HasSuffix(sk, "#"+id) || avString(r.PutRequest.Item["eventId"]) == id {
					left[table] = append(left[table], r)
				} else {
					kept[table] = append(kept[table], r)
				}
			}
		}
		out := &dynamodb.BatchWriteItemOutput{}
		if len(kept) > 0 {
			in.Parameters = &dynamodb.BatchWriteItemInput{RequestItems: kept}
			res, md, err := next.HandleInitialize(ctx, in)
			if err != nil {
				return res, md, err
			}
			out = res.Result.(*dynamodb.BatchWriteItemOutput)
		}
		if out.UnprocessedItems == nil {
			out.UnprocessedItems = map[string][]types.WriteRequest{}
		}
		for table, reqs := range left {
			out.UnprocessedItems[table] = append(out.UnprocessedItems[table], reqs...)
		}
		return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, nil
	})
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Initialize.Add(mw, middleware.After) })
	}
}

// wantCounters fails unless the user's counters of the current month,
// read through GET /v1/users/{userId}/stats, are want.
func wantCounters(t *testing.T, f *usageFixture, userID string, want licadmin.Counters) {
	t.Helper()
	r := f.userStats(userReq(routeUserStats, f.admin, userID, nil))
	r.Want(t, http.StatusOK)
	var got licadmin.Counters
	r.Decode(t, &got)
	if got != want {
		t.Fatalf("counters of %s %+v, want %+v (%s)", userID, got, want, r.Body)
	}
}

// TestIngestDrops ensures events that can never be written — malformed,
// for unknown users, or for users of another account — are dropped (no
// batch item failure, so never retried) and write nothing.
func TestIngestDrops(t *testing.T) {
	f := newUsageFixture(t)
	now := time.Now().Add(-time.Minute)
	base := func() usage.Message { return event(f.acct, f.adaEmail, licadmin.EventSent, now) }
	with := func(change func(*usage.Message)) usage.Message {
		m := base()
		change(&m)
		return m
	}
	cases := map[string]any{
		"not JSON":                  "{",
		"JSON but not an object":    `["sent"]`,
		"unknown type":              with(func(m *usage.Message) { m.Type = "clicked" }),
		"no event id":               with(func(m *usage.Message) { m.EventID = "" }),
		"no account":                with(func(m *usage.Message) { m.AccountID = "" }),
		"no user":                   with(func(m *usage.Message) { m.Email = "" }),
		"bad time":                  with(func(m *usage.Message) { m.At = "yesterday" }),
		"time in the future":        with(func(m *usage.Message) { m.At = time.Now().Add(time.Hour).Format(time.RFC3339) }),
		"negative bytes":            with(func(m *usage.Message) { m.Bytes = -1 }),
		"bad ip":                    with(func(m *usage.Message) { m.IP = "300.1.1.1" }),
		"unknown email":             with(func(m *usage.Message) { m.Email = "nobody@acme.test" }),
		"unknown user id":           with(func(m *usage.Message) { m.Email, m.UserID = "", unknownID }),
		"user of another account":   with(func(m *usage.Message) { m.Email, m.UserID = "", f.otherID }),
		"email of another account":  with(func(m *usage.Message) { m.Email = f.other }),
		"account of another user":   with(func(m *usage.Message) { m.AccountID = "01OTHERACCOUNT" }),
		"userId and email disagree": with(func(m *usage.Message) { m.UserID = f.bob }),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			if resp := f.Ingest(t, m); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("batch item failures %v, want none: the event is dropped", resp.BatchItemFailures)
			}
		})
	}
	for _, prefix := range []string{"LOG#", "USAGE#"} {
		if n := countItems(t, f.Env, prefix, ""); n != 0 {
			t.Fatalf("%d %s items written, want none", n, prefix)
		}
	}
	if n := countItems(t, f.Env, "USER#", "STATS#"); n != 0 {
		t.Fatalf("%d counter items written, want none", n)
	}
}

// racingStore bumps a user's log generation (a license removal) between
// the ingestion's read of the batch's users and its write, once.
type racingStore struct {
	usage.Store
	bump func()
	done bool
}

func (s *racingStore) UsageUsers(ctx context.Context, ids, emails []string) (map[string]*licadmin.User, map[string]*licadmin.User, error) {
	byID, byEmail, err := s.Store.UsageUsers(ctx, ids, emails)
	if !s.done {
		s.done = true
		s.bump()
	}
	return byID, byEmail, err
}

// TestIngestBatchMixed ensures a batch that mixes users, duplicates (the
// same event twice, once by email and once by user id) and a log
// generation change between its read and its write writes each event once:
// the entries of the user whose license was removed meanwhile are in the
// ended generation, which no read reaches (never in the current one, nor
// readable in the old), and every event counts once in the monthly
// counters; redelivered after the change, the batch writes no entry and
// counts nothing again.
func TestIngestBatchMixed(t *testing.T) {
	f := newUsageFixture(t)
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	at := time.Now().Add(-time.Minute)
	a1, a2 := event(f.acct, f.adaEmail, licadmin.EventSent, at), event(f.acct, f.adaEmail, licadmin.EventOpened, at)
	b1, b2 := event(f.acct, f.bobEmail, licadmin.EventSent, at), event(f.acct, f.bobEmail, licadmin.EventSigned, at)
	a1ByID, b1ByID := a1, b1
	a1ByID.Email, a1ByID.UserID = "", f.ada
	b1ByID.Email, b1ByID.UserID = "", f.bob
	batch := []any{a1, b1, a1ByID, a2, b2, b1ByID, a1}

	st := &racingStore{Store: f.App.Usage.Store, bump: func() {
		f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
	}}
	f.App.Usage.Store = st
	if resp := f.Ingest(t, batch...); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures %v, want none", resp.BatchItemFailures)
	}
	if !st.done {
		t.Fatal("the removal did not run between the read and the write")
	}
	if gen := f.LogGeneration(t, f.ada); gen != 1 {
		t.Fatalf("ada's log generation %d, want 1 after the removal", gen)
	}
	if got := refs(f.userLogs(t, f.admin, f.ada, nil).Items); len(got) != 0 {
		t.Fatalf("ada's log %v, want nothing: her events were written into the generation the removal ended", got)
	}
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#1", ""); n != 0 {
		t.Fatalf("%d entries in ada's current generation, want none", n)
	}
	if got := refs(f.userLogs(t, f.admin, f.bob, nil).Items); !slices.Equal(sorted(got), sorted([]string{b1.MessageRef, b2.MessageRef})) {
		t.Fatalf("bob's log %v, want b1 and b2 once each", got)
	}
	if n := countItems(t, f.Env, "USAGE#", ""); n != 0 {
		t.Fatalf("%d event claims, want none: a fresh event is its log entry alone", n)
	}
	if n := countItems(t, f.Env, "LOG#", ""); n != 4 {
		t.Fatalf("%d log entries, want the 4 events once each", n)
	}
	adaWant := licadmin.Counters{Sent: 1, BytesSent: 1000, Opens: 1}
	bobWant := licadmin.Counters{Sent: 1, BytesSent: 1000, Signed: 1}
	wantCounters(t, f, f.ada, adaWant)
	wantCounters(t, f, f.bob, bobWant)

	// The queue delivers the whole batch again.
	if resp := f.Ingest(t, batch...); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures %v on redelivery, want none", resp.BatchItemFailures)
	}
	if got := refs(f.userLogs(t, f.admin, f.ada, nil).Items); len(got) != 0 {
		t.Fatalf("ada's log %v after the redelivery, want nothing: her events were recorded in the ended generation", got)
	}
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#0", ""); n != 2 {
		t.Fatalf("%d entries in ada's ended generation, want a1 and a2 once each", n)
	}
	if n := countItems(t, f.Env, "LOG#", ""); n != 4 {
		t.Fatalf("%d log entries in all, want 4", n)
	}
	if got := refs(f.userLogs(t, f.admin, f.bob, nil).Items); len(got) != 2 {
		t.Fatalf("bob's log %v after the redelivery, want still 2 entries", got)
	}
	wantCounters(t, f, f.ada, adaWant)
	wantCounters(t, f, f.bob, bobWant)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestLogsFiltersAndOrder ensures a log lists the user's own entries newest
// first, in the last 30 days by default, and that from, to (times and
// dates) and type select entries as documented; bad parameters answer 400.
func TestLogsFiltersAndOrder(t *testing.T) {
	f := newUsageFixture(t)
	now := time.Now().UTC()
	day := 24 * time.Hour
	e1 := event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-40*day))
	e2 := event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-10*day))
	e3 := event(f.acct, f.adaEmail, licadmin.EventOpened, now.Add(-5*day))
	e4 := event(f.acct, f.adaEmail, licadmin.EventDownloaded, now.Add(-2*day))
	e5 := event(f.acct, f.adaEmail, licadmin.EventSigned, now.Add(-time.Hour))
	other := event(f.acct, f.bobEmail, licadmin.EventSent, now.Add(-time.Hour))
	e5.Recipients, e5.Bytes, e5.IP = []string{"a@example.org", "b@example.org"}, 4242, "2001:db8::1"
	// Eco keeps entries 90 days: e1, 40 days old, is still readable.
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	ingest(t, f.Env, e1, e2, e3, e4, e5, other)

	date := func(d time.Duration) string { return now.Add(d).Format(time.DateOnly) }
	cases := []struct {
		name  string
		query map[string]string
		want  []usage.Message
	}{
		{"default: the last 30 days", nil, []usage.Message{e5, e4, e3, e2}},
		{"type", map[string]string{"type": "sent"}, []usage.Message{e2}},
		{"type over a longer range", map[string]string{"type": "sent", "from": date(-60 * day)}, []usage.Message{e2, e1}},
		{"dates, to included", map[string]string{"from": date(-5 * day), "to": date(-2 * day)}, []usage.Message{e4, e3}},
		{"times, to excluded", map[string]string{"from": now.Add(-6 * day).Format(time.RFC3339), "to": e4.At}, []usage.Message{e3}},
		{"from included", map[string]string{"from": e4.At}, []usage.Message{e5, e4}},
		{"to alone: 30 days before it", map[string]string{"to": date(-3 * day)}, []usage.Message{e3, e2}},
		{"nothing", map[string]string{"type": "opened", "from": date(-2 * day)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := []string{}
			for _, m := range c.want {
				want = append(want, m.MessageRef)
			}
			if got := refs(f.userLogs(t, f.admin, f.ada, c.query).Items); !slices.Equal(got, want) {
				t.Fatalf("log %v, want %v", got, want)
			}
		})
	}

	// The entry representation.
	r := f.logs(apitest.Request{Route: routeUserLogs, Params: map[string]string{"userId": f.ada}, Email: f.admin, Query: map[string]string{"limit": "1"}})
	var raw struct{ Items []json.RawMessage }
	r.Decode(t, &raw)
	wantKeys(t, raw.Items[0], "id", "time", "type", "messageRef", "recipients", "size", "sourceIp")
	got := readLogs(t, r).Items[0]
	at, _ := time.Parse(time.RFC3339Nano, e5.At)
	want := licadmin.LogEntry{ID: e5.EventID, Time: at, Type: licadmin.EventSigned, MessageRef: e5.MessageRef,
		Recipients: e5.Recipients, Size: 4242, SourceIP: "2001:db8::1"}
	if !got.Time.Equal(want.Time) || got.ID != want.ID || got.Type != want.Type || got.MessageRef != want.MessageRef ||
		!slices.Equal(got.Recipients, want.Recipients) || got.Size != want.Size || got.SourceIP != want.SourceIP {
		t.Fatalf("entry %+v, want %+v", got, want)
	}

	// Ada reads her own log; Bob his.
	if got := refs(readLogs(t, f.mine(apitest.Request{Route: routeMyLogs, Email: f.adaEmail})).Items); !slices.Equal(got, []string{e5.MessageRef, e4.MessageRef, e3.MessageRef, e2.MessageRef}) {
		t.Fatalf("ada's own log %v", got)
	}
	if got := refs(readLogs(t, f.mine(apitest.Request{Route: routeMyLogs, Email: f.bobEmail, Query: map[string]string{"type": "sent"}})).Items); !slices.Equal(got, []string{other.MessageRef}) {
		t.Fatalf("bob's own log %v", got)
	}

	bad := []map[string]string{
		{"from": "yesterday"}, {"to": "2026-02-30"}, {"from": date(-1 * day), "to": date(-3 * day)}, {"type": "clicked"},
		{"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"cursor": "not-a-cursor"},
	}
	for _, q := range bad {
		f.logs(apitest.Request{Route: routeUserLogs, Params: map[string]string{"userId": f.ada}, Email: f.admin, Query: q}).
			WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
		f.mine(apitest.Request{Route: routeMyLogs, Email: f.adaEmail, Query: q}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
}

// TestLogsPagination ensures pages follow each other without gaps or
// repeats, stay stable when newer entries arrive between pages, and that a
// cursor only works for the caller, user and filters it was issued for.
func TestLogsPagination(t *testing.T) {
	f := newUsageFixture(t)
	now := time.Now().UTC()
	var all []string
	var msgs []any
	for i := range 7 {
		m := event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-time.Duration(i+1)*time.Hour))
		msgs = append(msgs, m)
		all = append(all, m.MessageRef)
	}
	ingest(t, f.Env, msgs...)

	q := map[string]string{"limit": "3"}
	first := f.userLogs(t, f.admin, f.ada, q)
	if first.NextCursor == nil || len(first.Items) != 3 {
		t.Fatalf("first page %v, want 3 entries and a cursor", refs(first.Items))
	}
	// A newer entry arrives: the following pages do not shift.
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-time.Minute)))
	got := refs(first.Items)
	cursor := *first.NextCursor
	for pages := 1; ; pages++ {
		p := f.userLogs(t, f.admin, f.ada, map[string]string{"limit": "3", "cursor": cursor})
		got = append(got, refs(p.Items)...)
		if p.NextCursor == nil {
			if pages != 2 {
				t.Fatalf("%d more pages, want 2", pages)
			}
			break
		}
		cursor = *p.NextCursor
	}
	if !slices.Equal(got, all) {
		t.Fatalf("pages %v, want %v", got, all)
	}
	// An exact last page has no cursor.
	if p := f.userLogs(t, f.admin, f.ada, map[string]string{"limit": "8"}); p.NextCursor != nil || len(p.Items) != 8 {
		t.Fatalf("page of 8 of 8: %d entries, cursor %v", len(p.Items), p.NextCursor)
	}

	// A cursor is bound to its caller, user and filters.
	second := f.userAs(t, f.admin, "second@acme.test", "admin")
	_ = second
	c := *first.NextCursor
	misuse := []apitest.Request{
		{Route: routeUserLogs, Params: map[string]string{"userId": f.ada}, Email: f.admin, Query: map[string]string{"cursor": c, "type": "sent"}},
		{Route: routeUserLogs, Params: map[string]string{"userId": f.ada}, Email: f.admin, Query: map[string]string{"cursor": c, "from": "2020-01-01"}},
		{Route: routeUserLogs, Params: map[string]string{"userId": f.bob}, Email: f.admin, Query: map[string]string{"cursor": c}},
		{Route: routeUserLogs, Params: map[string]string{"userId": f.ada}, Email: "second@acme.test", Query: map[string]string{"cursor": c}},
	}
	for _, r := range misuse {
		f.logs(r).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	f.mine(apitest.Request{Route: routeMyLogs, Email: f.adaEmail, Query: map[string]string{"cursor": c}}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
}

// TestUsageRoutesAccess ensures, on every usage route, that a plain user
// gets 403 on admin routes and reads its own log, that ids of another
// account answer exactly like unknown ids (404), and that a request
// without a token or from a token of no user is refused.
func TestUsageRoutesAccess(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, time.Now().Add(-time.Hour)))
	r := f.export(userReq(routeExport, f.admin, f.ada, nil))
	r.Want(t, http.StatusAccepted)
	var x struct{ ExportID string }
	r.Decode(t, &x)
	if q.Len() != 1 {
		t.Fatalf("%d export jobs, want 1", q.Len())
	}

	type route struct {
		name string
		call func(apitest.Request) *apitest.Response
		req  func(caller, id string) apitest.Request
		ok   int
	}
	onUser := func(rt string) func(caller, id string) apitest.Request {
		return func(caller, id string) apitest.Request { return userReq(rt, caller, id, nil) }
	}
	routes := []route{
		{"user logs", f.logs, onUser(routeUserLogs), http.StatusOK},
		{"export", f.export, onUser(routeExport), http.StatusAccepted},
		{"user stats", f.userStats, onUser(routeUserStats), http.StatusOK},
		{"get export", f.getExport, func(caller, id string) apitest.Request {
			return apitest.Request{Route: routeGetExport, Params: map[string]string{"exportId": id}, Email: caller}
		}, http.StatusOK},
	}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			own := f.ada
			if rt.name == "get export" {
				own = x.ExportID
			}
			rt.call(rt.req(f.admin, own)).Want(t, rt.ok)
			if rt.name == "get export" {
				// An export answers whoever asked for it only.
				rt.call(rt.req(f.adaEmail, own)).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
			} else {
				rt.call(rt.req(f.adaEmail, own)).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
			}
			rt.call(rt.req("stranger@nowhere.test", own)).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
			rt.call(rt.req("", own)).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
			// The other account's admin: our id is unknown to it.
			foreign := rt.call(rt.req(f.other, own))
			unknown := rt.call(rt.req(f.other, unknownID))
			foreign.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
			wantSameAnswer(t, foreign, unknown, own, unknownID)
			// Our admin with the other account's user id.
			if rt.name != "get export" {
				wantSameAnswer(t, rt.call(rt.req(f.admin, f.otherID)), rt.call(rt.req(f.admin, unknownID)), f.otherID, unknownID)
			}
		})
	}
	t.Run("stats", func(t *testing.T) {
		f.stats(apitest.Request{Route: routeStats, Email: f.admin}).Want(t, http.StatusOK)
		f.stats(apitest.Request{Route: routeStats, Email: f.adaEmail}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
		f.stats(apitest.Request{Route: routeStats, Email: "stranger@nowhere.test"}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
		f.stats(apitest.Request{Route: routeStats}).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
		// The other account sees its own statistics only.
		r := f.stats(apitest.Request{Route: routeStats, Email: f.other})
		r.Want(t, http.StatusOK)
		var s struct {
			Items []struct{ UserID string }
			Users licadmin.UserCounts
		}
		r.Decode(t, &s)
		if len(s.Items) != 1 || s.Items[0].UserID != f.otherID || s.Users.Total != 1 {
			t.Fatalf("the other account's stats %s, want its admin only", r.Body)
		}
	})
	t.Run("my logs", func(t *testing.T) {
		if p := readLogs(t, f.mine(apitest.Request{Route: routeMyLogs, Email: f.adaEmail})); len(p.Items) != 1 {
			t.Fatalf("ada's own log has %d entries, want 1", len(p.Items))
		}
		if p := readLogs(t, f.mine(apitest.Request{Route: routeMyLogs, Email: f.other})); len(p.Items) != 0 {
			t.Fatalf("the other account's admin sees %d entries of its own log, want none", len(p.Items))
		}
		f.mine(apitest.Request{Route: routeMyLogs, Email: "stranger@nowhere.test"}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
		f.mine(apitest.Request{Route: routeMyLogs}).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
	})
}

// TestRemoveCostIndependentOfLogs ensures remove and transfer send the
// same DynamoDB requests whether the user has no log entry or many (docs/api.md
// rule 6: their latency must not grow with the log).
func TestRemoveCostIndependentOfLogs(t *testing.T) {
	f := newUsageFixture(t)
	carl := f.user(t, "carl@acme.test")
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.assign(f.admin, f.bob, "eco").Want(t, http.StatusOK)
	var msgs []any
	for i := range 60 {
		msgs = append(msgs, event(f.acct, f.bobEmail, licadmin.EventSent, time.Now().Add(-time.Duration(i+1)*time.Minute)))
	}
	ingest(t, f.Env, msgs...)
	c := f.countReads()

	measure := func(r apitest.Request, call func(apitest.Request) *apitest.Response) string {
		c.reset()
		call(r).Want(t, http.StatusOK)
		return c.snapshot()
	}
	empty := measure(userReq(routeRemove, f.admin, f.ada, nil), f.h.remove)
	full := measure(userReq(routeRemove, f.admin, f.bob, nil), f.h.remove)
	if empty != full {
		t.Fatalf("remove without logs: %s; with 60 entries: %s", empty, full)
	}
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.assign(f.admin, f.bob, "eco").Want(t, http.StatusOK)
	ingest(t, f.Env, event(f.acct, f.bobEmail, licadmin.EventSent, time.Now()))
	empty = measure(userReq(routeTransfer, f.admin, f.ada, map[string]string{"toUserId": carl}), f.h.transfer)
	f.h.remove(userReq(routeRemove, f.admin, carl, nil)).Want(t, http.StatusOK)
	full = measure(userReq(routeTransfer, f.admin, f.bob, map[string]string{"toUserId": carl}), f.h.transfer)
	if empty != full {
		t.Fatalf("transfer without logs: %s; with entries: %s", empty, full)
	}
}

// TestIngestRecordsRetention ensures each entry expires after its user's
// tier's retention (TTL), and counters after the longest one.
func TestIngestRecordsRetention(t *testing.T) {
	f := newUsageFixture(t)
	f.assign(f.admin, f.ada, "pro").Want(t, http.StatusOK)
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, at), event(f.acct, f.bobEmail, licadmin.EventSent, at))
	day := int64(24 * 3600)
	for _, it := range f.Scan(t) {
		pk, ttl := avString(it["pk"]), it["ttl"]
		if ttl == nil {
			continue
		}
		nv, ok := ttl.(*types.AttributeValueMemberN)
		if !ok {
			t.Fatalf("ttl of %s is %T, want a number", pk, ttl)
		}
		n, _ := strconv.ParseInt(nv.Value, 10, 64)
		switch pk {
		case "LOG#" + f.ada + "#0":
			if n != at.Unix()+7*365*day {
				t.Errorf("pro entry ttl %d, want 7 years after the event", n)
			}
		case "LOG#" + f.bob + "#0":
			if n != at.Unix()+30*day {
				t.Errorf("unlicensed entry ttl %d, want 30 days after the event", n)
			}
		}
	}
}

// TestRecordUsageRedelivered ensures the monthly counters count each log
// entry once however the stream delivers its INSERTs to the recording
// function:
// a batch whose second sum failed, delivered again from the failed record
// (as Lambda does with the reported failure), then whole (as after a
// timeout), from the middle, and overlapping what an earlier batch
// counted; and a sum whose update was written but whose answer was lost.
func TestRecordUsageRedelivered(t *testing.T) {
	f := newUsageFixture(t)
	at := time.Now().Add(-time.Minute)
	var msgs []string
	for i, email := range []string{f.adaEmail, f.bobEmail, f.adaEmail, f.bobEmail, f.adaEmail} {
		m := event(f.acct, email, licadmin.EventSent, at.Add(time.Duration(i)*time.Second))
		b, _ := json.Marshal(m)
		msgs = append(msgs, string(b))
	}
	// Written without counting: the test delivers the stream itself.
	resp, err := f.App.Usage.HandleSQS(apitest.AsFunction(context.Background(), "IngestUsageFunction"), apitest.SQSEvent(msgs...))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("ingest: %v %v", resp.BatchItemFailures, err)
	}
	mail := f.WithEmail(t)
	entriesOf := func(recs []events.DynamoDBEventRecord) []events.DynamoDBEventRecord {
		var entries []events.DynamoDBEventRecord
		for _, r := range recs {
			if r.EventName == "INSERT" && strings.HasPrefix(r.Change.Keys["pk"].String(), "LOG#") {
				entries = append(entries, r)
			}
		}
		return entries
	}
	entries := entriesOf(mail.Next(t))
	if len(entries) != 5 {
		t.Fatalf("%d log entry INSERTs on the stream, want 5", len(entries))
	}
	deliver := recorderDelivery(t, f.Env)
	ada := licadmin.Counters{Sent: 3, BytesSent: 3000}
	bob := licadmin.Counters{Sent: 2, BytesSent: 2000}

	// A first batch of three records: ada's first two and bob's first.
	if resp := deliver(entries[:3]); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	wantCounters(t, f, f.ada, licadmin.Counters{Sent: 2, BytesSent: 2000})
	wantCounters(t, f, f.bob, licadmin.Counters{Sent: 1, BytesSent: 1000})

	// The next batch overlaps it (all five records); bob's update fails.
	opt, _ := apitest.Faults(func(op string, n int) apitest.Fault {
		if op == "UpdateItem" && n == 3 { // bob's sum, after ada's two tries
			return apitest.Fail
		}
		return apitest.NoFault
	})
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	failed := deliver(entries)
	want := []events.DynamoDBBatchItemFailure{{ItemIdentifier: entries[1].Change.SequenceNumber}}
	if !slices.Equal(failed.BatchItemFailures, want) {
		t.Fatalf("batch item failures %v, want the first record of bob's sum (%s)", failed.BatchItemFailures, want[0].ItemIdentifier)
	}
	wantCounters(t, f, f.ada, ada)
	wantCounters(t, f, f.bob, licadmin.Counters{Sent: 1, BytesSent: 1000})
	f.App.Store.DB = f.App.DynamoDB
	// In this order: Lambda retries a shard from the failed record before
	// it delivers anything after it, so the first redelivery starts there.
	for _, re := range []struct {
		name string
		recs []events.DynamoDBEventRecord
	}{
		{"from the failed record", entries[1:]}, {"the whole batch again", entries}, {"from the middle", entries[3:]}, {"the last alone", entries[4:]},
	} {
		if resp := deliver(re.recs); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: failures %v", re.name, resp.BatchItemFailures)
		}
		wantCounters(t, f, f.ada, ada)
		wantCounters(t, f, f.bob, bob)
	}

	// An update written whose answer was lost: the SDK's retry, and the
	// stream's redelivery, find it counted.
	more := event(f.acct, f.adaEmail, licadmin.EventOpened, at)
	b, _ := json.Marshal(more)
	if resp, err := f.App.Usage.HandleSQS(apitest.AsFunction(context.Background(), "IngestUsageFunction"), apitest.SQSEvent(string(b))); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("ingest: %v %v", resp.BatchItemFailures, err)
	}
	next := entriesOf(mail.Next(t))
	lost, calls := apitest.Faults(apitest.LoseFirst("UpdateItem"))
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), lost)
	deliver(next)
	deliver(next)
	if calls.Get("lost:UpdateItem") != 1 {
		t.Fatal("the lost answer was not injected")
	}
	ada.Opens = 1
	wantCounters(t, f, f.ada, ada)
	if n := countItems(t, f.Env, "LOG#", ""); n != 6 {
		t.Fatalf("%d log entries, want the 6 events once each", n)
	}
}

// TestIngestRemembersUsers ensures the ingest function reads a user at
// most about once per usage.RememberUsers: a batch naming users it read
// (by id and by email) reads nothing; a failed read fails only the events
// of users it does not remember; once the memory is outlived, with the
// user deleted and its email given to a new user, events naming the email
// count for the new user only.
func TestIngestRemembersUsers(t *testing.T) {
	f := newUsageFixture(t)
	carl := f.user(t, "carl@acme.test")
	at := time.Now().Add(-time.Minute)
	// The ingest clock stands still: however slow the machine, the memory
	// holds until outliveMemory.
	f.App.Usage.Now = apitest.NewClock(time.Now()).Now
	byID := func(userID string, typ licadmin.EventType) usage.Message {
		m := event(f.acct, "", typ, at)
		m.UserID = userID
		return m
	}
	reads := f.countReads()
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, at), byID(f.bob, licadmin.EventSent))
	reads.reset()
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, at), byID(f.bob, licadmin.EventOpened))
	if got := reads.snapshot(); strings.Contains(got, "BatchGetItem") || strings.Contains(got, "GetItem=") {
		t.Fatalf("a batch of remembered users sent %s, want no read", got)
	}
	wantCounters(t, f, f.ada, licadmin.Counters{Sent: 2, BytesSent: 2000})
	wantCounters(t, f, f.bob, licadmin.Counters{Sent: 1, BytesSent: 1000, Opens: 1})

	opt, _ := apitest.Faults(func(op string, n int) apitest.Fault {
		if op == "BatchGetItem" {
			return apitest.Fail
		}
		return apitest.NoFault
	})
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	resp := f.Ingest(t, event(f.acct, f.adaEmail, licadmin.EventSigned, at), byID(carl, licadmin.EventSent))
	f.App.Store.DB = f.App.DynamoDB
	if want := []events.SQSBatchItemFailure{{ItemIdentifier: "m2"}}; !slices.Equal(resp.BatchItemFailures, want) {
		t.Fatalf("with reads failing, failures %v, want carl's event alone (m2)", resp.BatchItemFailures)
	}
	wantCounters(t, f, f.ada, licadmin.Counters{Sent: 2, BytesSent: 2000, Signed: 1})

	f.del(userReq(routeDeleteUser, f.admin, f.ada, nil)).Want(t, http.StatusNoContent)
	again := f.user(t, f.adaEmail)
	f.outliveMemory()
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventOpened, at))
	wantCounters(t, f, again, licadmin.Counters{Opens: 1})
	if got := refs(f.userLogs(t, f.admin, again, nil).Items); len(got) != 1 {
		t.Fatalf("the new user's log %v, want the one event", got)
	}
}

// TestIngestAcrossLogGenerations ensures every event counts once and shows
// only in the log it belongs to when its user's license is removed
// between deliveries: a fresh event is its log entry alone, an event
// older than store.ClaimAge when queued (or whose queue time is unknown)
// goes through a claim, each redelivered before and after the removal;
// an event timed before the removal but first delivered after it is
// dropped (its log is erased); an event after the removal counts and
// shows in the new log. (Within usage.RememberUsers of the removal, the
// ingest function may still decide on the user as it was: the test waits
// that out.)
func TestIngestAcrossLogGenerations(t *testing.T) {
	f := newUsageFixture(t)
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	now := time.Now()
	fresh := event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-time.Minute))
	old := event(f.acct, f.adaEmail, licadmin.EventOpened, now.Add(-store.ClaimAge-time.Hour))
	unknown := event(f.acct, f.adaEmail, licadmin.EventSigned, now.Add(-2*time.Minute))
	ingestUnsent := func() {
		t.Helper()
		b, _ := json.Marshal(unknown)
		ev := apitest.SQSEvent(string(b))
		delete(ev.Records[0].Attributes, "SentTimestamp")
		resp, err := f.App.Usage.HandleSQS(apitest.AsFunction(context.Background(), "IngestUsageFunction"), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("ingest: %v %v", resp.BatchItemFailures, err)
		}
		f.DeliverUsageStream(t)
	}
	want := map[string]licadmin.Counters{} // per month
	count := func(m usage.Message) {
		at, _ := time.Parse(time.RFC3339Nano, m.At)
		c := want[at.UTC().Format(licadmin.MonthLayout)]
		c.Count(licadmin.EventType(m.Type), m.Bytes)
		want[at.UTC().Format(licadmin.MonthLayout)] = c
	}
	count(fresh)
	count(old)
	count(unknown)
	check := func(when string, logRefs []string) {
		t.Helper()
		for month, c := range want {
			usage, err := f.App.Store.UserUsage(context.Background(), f.ada, month, month)
			if err != nil {
				t.Fatal(err)
			}
			if got := usage[month]; got != c {
				t.Fatalf("%s: counters of %s %+v, want %+v", when, month, got, c)
			}
		}
		got := refs(f.userLogs(t, f.admin, f.ada, map[string]string{"from": now.Add(-40 * 24 * time.Hour).Format(time.RFC3339)}).Items)
		if !slices.Equal(sorted(got), sorted(logRefs)) {
			t.Fatalf("%s: ada's log %v, want %v", when, got, logRefs)
		}
	}

	for range 2 {
		ingest(t, f.Env, fresh, old)
		ingestUnsent()
	}
	if n := countItems(t, f.Env, "USAGE#"+f.ada, ""); n != 2 {
		t.Fatalf("%d claims of ada, want 2: the old event's and the one whose queue time is unknown", n)
	}
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#0", ""); n != 3 {
		t.Fatalf("%d entries in ada's log, want 3", n)
	}
	check("before the removal", []string{fresh.MessageRef, old.MessageRef, unknown.MessageRef})

	f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
	f.DeliverUsageStream(t)
	f.outliveMemory()
	for range 2 {
		ingest(t, f.Env, fresh, old)
		ingestUnsent()
	}
	late := event(f.acct, f.adaEmail, licadmin.EventDownloaded, time.Now().Add(-time.Second))
	ingest(t, f.Env, late)
	check("after the removal", nil)
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#1", ""); n != 0 {
		t.Fatalf("%d entries in ada's new log, want none", n)
	}

	time.Sleep(2 * time.Millisecond) // a later millisecond than the removal's
	after := event(f.acct, f.adaEmail, licadmin.EventDownloaded, time.Now())
	ingest(t, f.Env, after, after)
	ingest(t, f.Env, after)
	count(after)
	check("an event after the removal", []string{after.MessageRef})
}

// TestEveryLogEndDropsEarlierEvents ensures each change that ends a user's
// log — remove, transfer (for the former holder), a bulk remove — records
// when the new log began, so that an event timed before it is dropped
// while one timed after it counts; a change that keeps the log (modify)
// drops nothing.
func TestEveryLogEndDropsEarlierEvents(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ends  bool
		apply func(f *usageFixture)
	}{
		{"remove", true, func(f *usageFixture) {
			f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
		}},
		{"transfer", true, func(f *usageFixture) {
			f.h.transfer(userReq(routeTransfer, f.admin, f.ada, map[string]string{"toUserId": f.bob})).Want(t, http.StatusOK)
		}},
		{"bulk remove", true, func(f *usageFixture) {
			f.bulk(t, bulkBody("remove", "", f.ada), nil).Want(t, http.StatusOK)
		}},
		{"modify", false, func(f *usageFixture) {
			f.h.modify(userReq(routeModify, f.admin, f.ada, map[string]string{"tier": "pro"})).Want(t, http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newUsageFixture(t)
			f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
			before := time.Now().Add(-time.Second)
			tc.apply(f)
			f.outliveMemory()
			time.Sleep(2 * time.Millisecond)
			ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, before), event(f.acct, f.adaEmail, licadmin.EventOpened, time.Now()))
			want := licadmin.Counters{Opens: 1}
			if !tc.ends {
				want = licadmin.Counters{Sent: 1, BytesSent: 1000, Opens: 1}
			}
			wantCounters(t, f, f.ada, want)
		})
	}
}
