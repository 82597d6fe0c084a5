package api_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// someEvents ingests n events of the user with email, timed a minute
// apart in the last n minutes, and returns their message references,
// newest first.
func (f *usageFixture) someEvents(t *testing.T, email string, n int) []string {
	t.Helper()
	now := time.Now()
	return f.eventsAt(t, email, n, func(i int) time.Time { return now.Add(-time.Duration(i+1) * time.Minute) })
}

// eventsSince ingests n events of the user with email, timed after since
// and a millisecond apart, and returns their message references, newest
// first.
func (f *usageFixture) eventsSince(t *testing.T, email string, n int, since time.Time) []string {
	t.Helper()
	return f.eventsAt(t, email, n, func(i int) time.Time { return since.Add(time.Duration(n-i) * time.Millisecond) })
}

// eventsAt ingests n events of the user with email, the i-th timed at(i),
// and returns their message references in that order.
func (f *usageFixture) eventsAt(t *testing.T, email string, n int, at func(i int) time.Time) []string {
	t.Helper()
	var msgs []any
	var want []string
	for i := range n {
		m := event(f.acct, email, licadmin.EventSent, at(i))
		msgs = append(msgs, m)
		want = append(want, m.MessageRef)
	}
	ingest(t, f.Env, msgs...)
	return want
}

// wantLog fails unless the user's log, read by the admin and by the user
// itself, is want.
func (f *usageFixture) wantLog(t *testing.T, userID, email string, want []string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := refs(f.userLogs(t, f.admin, userID, map[string]string{"limit": "200"}).Items); !slices.Equal(got, want) {
		t.Fatalf("log of %s read by the admin: %v, want %v", email, got, want)
	}
	if got := refs(readLogs(t, f.mine(apitest.Request{Route: routeMyLogs, Email: email, Query: map[string]string{"limit": "200"}})).Items); !slices.Equal(got, want) {
		t.Fatalf("log of %s read by itself: %v, want %v", email, got, want)
	}
}

// TestRemoveHidesLogsAndPurges ensures removing a license makes the user's
// log unreadable at once, through both routes, and that the stream's purge
// then deletes the old generation's entries from the table, while new
// events go to the new generation.
func TestRemoveHidesLogsAndPurges(t *testing.T) {
	f := newUsageFixture(t)
	mail := f.WithEmail(t) // the stream also delivers the license emails
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.wantLog(t, f.ada, f.adaEmail, f.someEvents(t, f.adaEmail, 5))

	removed := time.Now()
	f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
	f.wantLog(t, f.ada, f.adaEmail, nil)
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#0", ""); n != 5 {
		t.Fatalf("%d entries of generation 0 before the purge, want 5 (unreadable, not deleted yet)", n)
	}
	mail.Drain(t)
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#", ""); n != 0 {
		t.Fatalf("%d entries after the purge, want none", n)
	}
	// Events before the removal belong to the erased log; later ones to
	// the new generation (once the ingest function no longer remembers
	// the user as it was).
	f.outliveMemory()
	if got := f.eventsSince(t, f.adaEmail, 2, removed.Add(-time.Minute)); len(got) != 2 {
		t.Fatal(got)
	}
	f.wantLog(t, f.ada, f.adaEmail, nil)
	newer := f.eventsSince(t, f.adaEmail, 2, time.Now().Add(time.Millisecond))
	f.wantLog(t, f.ada, f.adaEmail, newer)
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#1", ""); n != 2 {
		t.Fatalf("%d entries in generation 1, want 2", n)
	}
	// The counters (aggregates, not logs) are kept.
	if n := countItems(t, f.Env, "USER#"+f.ada, "STATS#"); n != 1 {
		t.Fatalf("%d counter items, want 1", n)
	}
}

// TestTransferHidesFormerHolderLogs ensures a transfer hides and purges the
// former holder's log and keeps the new holder's; modify keeps the log.
func TestTransferHidesFormerHolderLogs(t *testing.T) {
	f := newUsageFixture(t)
	mail := f.WithEmail(t) // the stream also delivers the license emails
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	adas := f.someEvents(t, f.adaEmail, 3)
	bobs := f.someEvents(t, f.bobEmail, 2)

	f.h.modify(userReq(routeModify, f.admin, f.ada, map[string]string{"tier": "pro"})).Want(t, http.StatusOK)
	mail.Drain(t)
	f.wantLog(t, f.ada, f.adaEmail, adas)

	f.h.transfer(userReq(routeTransfer, f.admin, f.ada, map[string]string{"toUserId": f.bob})).Want(t, http.StatusOK)
	f.wantLog(t, f.ada, f.adaEmail, nil)
	f.wantLog(t, f.bob, f.bobEmail, bobs)
	mail.Drain(t)
	if n := countItems(t, f.Env, "LOG#"+f.ada+"#", ""); n != 0 {
		t.Fatalf("%d entries of the former holder after the purge, want none", n)
	}
	if n := countItems(t, f.Env, "LOG#"+f.bob+"#0", ""); n != 2 {
		t.Fatalf("%d entries of the new holder, want its 2", n)
	}
}

// TestDeleteUserPurgesEverything ensures deleting a user purges its log
// entries and its monthly counters.
func TestDeleteUserPurgesEverything(t *testing.T) {
	f := newUsageFixture(t)
	mail := f.WithEmail(t) // the stream also delivers the license emails
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.someEvents(t, f.adaEmail, 4)
	f.someEvents(t, f.bobEmail, 1)
	f.del(userReq(routeDeleteUser, f.admin, f.ada, nil)).Want(t, http.StatusNoContent)
	f.logs(userReq(routeUserLogs, f.admin, f.ada, nil)).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	mail.Drain(t)
	if n := countItems(t, f.Env, "LOG#"+f.ada, ""); n != 0 {
		t.Fatalf("%d entries of the deleted user, want none", n)
	}
	if n := countItems(t, f.Env, "USER#"+f.ada, ""); n != 0 {
		t.Fatalf("%d items left in the deleted user's partition, want none", n)
	}
	if n := countItems(t, f.Env, "LOG#"+f.bob, ""); n != 1 {
		t.Fatalf("%d entries of another user, want its 1", n)
	}
}

// TestPurgeContinues ensures a purge larger than one call's budget goes on
// through its marker's stream records until the generation is empty, and
// leaves no marker behind.
func TestPurgeContinues(t *testing.T) {
	f := newUsageFixture(t)
	mail := f.WithEmail(t) // the stream also delivers the license emails
	f.App.Purger.Budget = 3
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.someEvents(t, f.adaEmail, 10)
	f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
	mail.Drain(t)
	if n := countItems(t, f.Env, "LOG#"+f.ada, ""); n != 0 {
		t.Fatalf("%d entries left, want none", n)
	}
	if n := countItems(t, f.Env, "PURGE#", ""); n != 0 {
		t.Fatalf("%d purge markers left, want none", n)
	}
}
