package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/activation"
	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

const (
	routeReminders = "POST /v1/activation-emails"
	routeReminder  = "GET /v1/activation-emails/{reminderId}"
)

// reminderFixture is the license fixture with a reminder queue and the
// reminder handlers.
type reminderFixture struct {
	*fixture
	q *apitest.ExportQueue
}

func newReminderFixture(t *testing.T) *reminderFixture {
	t.Helper()
	f := &reminderFixture{fixture: newFixture(t), q: &apitest.ExportQueue{}}
	f.App.Reminders.Queue = f.q
	return f
}

func (f *reminderFixture) remind(t *testing.T, caller string, body any, headers map[string]string) *apitest.Response {
	t.Helper()
	return apitest.Do(t, api.SendActivationEmails(f.App), withHeaders(apitest.Request{Route: routeReminders, Email: caller, Body: body}, headers))
}

func (f *reminderFixture) reminder(t *testing.T, caller, id string) *apitest.Response {
	t.Helper()
	return apitest.Do(t, api.GetActivationEmails(f.App), apitest.Request{Route: routeReminder, Email: caller, Params: map[string]string{"reminderId": id}})
}

// runJobs hands every waiting reminder job to the reminder function's
// handler, and the jobs it puts back, until none is left; it returns how
// many invocations ran.
func (f *reminderFixture) runJobs(t *testing.T) int {
	t.Helper()
	n := 0
	for f.q.Len() > 0 {
		for _, j := range f.q.Take() {
			resp, err := f.App.Reminders.HandleSQS(apitest.AsFunction(context.Background(), "SendRemindersFunction"), apitest.SQSEvent(j))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("reminder job failed: %+v %v", resp, err)
			}
			n++
		}
		if n > 10_000 {
			t.Fatal("the reminder does not advance")
		}
	}
	return n
}

// activationOutbox counts the activation emails queued per user id.
func activationOutbox(t *testing.T, env *apitest.Env) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, it := range env.Scan(t) {
		if o := store.OutboxFromImage(it); o != nil && o.Kind == licadmin.EmailActivation {
			out[o.UserID]++
		}
	}
	return out
}

// TestRemindListRetryAfterFailure ensures that a list reminder whose
// users were reminded but whose record failed (the request answered 500,
// so its Idempotency-Key remembers nothing) sends no second link when
// retried with the same key, even after the 60 seconds between links: the
// retry names the same reminder, which already reminded them, and answers
// them as queued. Without a key, or with another one, it is a new request.
func TestRemindListRetryAfterFailure(t *testing.T) {
	var failRecord atomic.Bool
	opt, calls := apitest.Faults(func(op string, n int) apitest.Fault {
		// The request's second transaction is the reminder's record (the
		// first reminded the user).
		if failRecord.Load() && op == "TransactWriteItems" && n == 2 {
			return apitest.Fail
		}
		return apitest.NoFault
	})
	f := newReminderFixture(t)
	clock := apitest.NewClock(time.Now().UTC())
	f.App.Reminders.Now = clock.Now
	d := f.user(t, "d@acme.test")
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)

	key := map[string]string{"Idempotency-Key": "remind-retry"}
	body := map[string]any{"userIds": []string{d}}
	calls.Reset()
	failRecord.Store(true)
	f.remind(t, f.admin, body, key).WantProblem(t, http.StatusInternalServerError, licadmin.EINTERNAL)
	failRecord.Store(false)
	if got := activationOutbox(t, f.Env)[d]; got != 1 {
		t.Fatalf("the failed request queued %d links for d, want 1 (its record failed after)", got)
	}

	clock.Advance(61 * time.Second)
	r := f.remind(t, f.admin, body, key)
	r.Want(t, http.StatusAccepted)
	var rem licadmin.Reminder
	r.Decode(t, &rem)
	if rem.Queued != 1 || rem.Skipped != 0 {
		t.Fatalf("retry: %+v, want d counted queued", rem)
	}
	if got := activationOutbox(t, f.Env)[d]; got != 1 {
		t.Fatalf("after the retry d has %d links, want still 1", got)
	}
	// The retry was recorded: once more, the same answer.
	if again := f.remind(t, f.admin, body, key); again.Body != r.Body {
		t.Fatalf("replay %s, want %s", again.Body, r.Body)
	}
	// Another key is another request: d gets a new link.
	f.remind(t, f.admin, body, map[string]string{"Idempotency-Key": "remind-other"}).Want(t, http.StatusAccepted)
	if got := activationOutbox(t, f.Env)[d]; got != 2 {
		t.Fatalf("another key: d has %d links, want 2", got)
	}
}

// TestRemindList ensures POST /v1/activation-emails with userIds queues a
// fresh link to each pending user of the list at once, and skips users
// sent one less than 60 seconds ago, active users, unknown ids and ids of
// another account alike; that the reminder reads back done with its
// counts; and that the request is validated, admin-only and idempotent.
func TestRemindList(t *testing.T) {
	f := newReminderFixture(t)
	a, b, c := f.user(t, "a@acme.test"), f.user(t, "b@acme.test"), f.user(t, "c@acme.test")
	setStatus(t, f.Env, c, licadmin.StatusActive)
	apitest.Do(t, api.SendActivationEmail(f.App), userReq("POST /v1/users/{userId}/activation-email", f.admin, a, nil)).Want(t, http.StatusAccepted)

	r := f.remind(t, f.admin, map[string]any{"userIds": []string{a, b, c, f.otherID, unknownID, b}}, nil)
	r.Want(t, http.StatusAccepted)
	var rem licadmin.Reminder
	r.Decode(t, &rem)
	if rem.Status != licadmin.ReminderDone || rem.Queued != 1 || rem.Skipped != 4 || rem.AllPending || r.Headers["Location"] != "/v1/activation-emails/"+rem.ID {
		t.Fatalf("reminder %+v (Location %q), want done, 1 queued (b), 4 skipped", rem, r.Headers["Location"])
	}
	if got := activationOutbox(t, f.Env); got[a] != 1 || got[b] != 1 || got[c] != 0 || got[f.otherID] != 0 {
		t.Fatalf("activation emails per user %v, want a's single one and b's", got)
	}
	g := f.reminder(t, f.admin, rem.ID)
	g.Want(t, http.StatusOK)
	var read licadmin.Reminder
	g.Decode(t, &read)
	if read.Status != licadmin.ReminderDone || read.Queued != 1 || read.Skipped != 4 {
		t.Fatalf("GET the reminder: %+v", read)
	}
	// b was just reminded: again within 60 s, skipped.
	r = f.remind(t, f.admin, map[string]any{"userIds": []string{b}}, nil)
	r.Decode(t, &rem)
	if rem.Queued != 0 || rem.Skipped != 1 {
		t.Fatalf("b again at once: %+v, want skipped", rem)
	}

	// Idempotency: a retry answers the first answer and queues nothing.
	key := map[string]string{"Idempotency-Key": "remind-1"}
	d := f.user(t, "d@acme.test")
	first := f.remind(t, f.admin, map[string]any{"userIds": []string{d}}, key)
	again := f.remind(t, f.admin, map[string]any{"userIds": []string{d}}, key)
	if first.Body != again.Body || activationOutbox(t, f.Env)[d] != 1 {
		t.Fatalf("retry answered %s (first %s); d has %d emails", again.Body, first.Body, activationOutbox(t, f.Env)[d])
	}
	f.remind(t, f.admin, map[string]any{"allPending": true}, key).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)

	// The longest list allowed: read in more than one BatchGetItem (the
	// caller's claim and the users are more than one call's 100 keys).
	e := f.user(t, "e@acme.test")
	longest := []string{e}
	for i := len(longest); i < activation.MaxReminderUsers; i++ {
		longest = append(longest, fmt.Sprintf("%s%03d", unknownID[:len(unknownID)-3], i))
	}
	r = f.remind(t, f.admin, map[string]any{"userIds": longest}, nil)
	r.Want(t, http.StatusAccepted)
	r.Decode(t, &rem)
	if rem.Queued != 1 || rem.Skipped != activation.MaxReminderUsers-1 || activationOutbox(t, f.Env)[e] != 1 {
		t.Fatalf("a list of %d ids: %+v, want e queued and the rest skipped", len(longest), rem)
	}

	// Bad requests, and callers who are no admin of the account.
	many := make([]string, activation.MaxReminderUsers+1)
	for i := range many {
		many[i] = fmt.Sprintf("id%d", i)
	}
	for _, body := range []any{map[string]any{}, map[string]any{"userIds": []string{}}, map[string]any{"allPending": false},
		map[string]any{"userIds": []string{a}, "allPending": true}, map[string]any{"userIds": many}, `{"extra":1}`, "{", nil} {
		f.remind(t, f.admin, body, nil).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	f.remind(t, "a@acme.test", map[string]any{"userIds": []string{b}}, nil).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.remind(t, "stranger@nowhere.test", map[string]any{"allPending": true}, nil).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.remind(t, "", map[string]any{"allPending": true}, nil).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
	f.reminder(t, "a@acme.test", read.ID).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	wantSameAnswer(t, f.reminder(t, f.other, read.ID), f.reminder(t, f.other, unknownID), read.ID, unknownID)
	f.reminder(t, f.other, read.ID).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	f.reminder(t, "", read.ID).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
	if f.q.Len() != 0 {
		t.Fatalf("%d reminder jobs queued by lists, want none", f.q.Len())
	}
	f.Invariants(t)
}

// TestRemindAllPending ensures {"allPending":true} answers 202 at once and
// reaches every pending user of the account (and no other) in the
// background, a page at a time over as many invocations as it takes (each
// continuing through the queue), with the 60-second rule per user and one
// fresh link each; that its progress reads back; that a job delivered
// again changes nothing; and that a job that cannot be queued leaves the
// reminder failed, never running.
func TestRemindAllPending(t *testing.T) {
	f := newReminderFixture(t)
	f.App.Reminders.Page = 3
	f.App.Reminders.MaxRunTime = time.Nanosecond // one page per invocation
	var pending []string
	for i := range 10 {
		pending = append(pending, f.user(t, fmt.Sprintf("p%d@acme.test", i)))
	}
	active := f.user(t, "active@acme.test")
	setStatus(t, f.Env, active, licadmin.StatusActive)
	other := f.userAs(t, f.other, "pending@globex.test", "user")
	apitest.Do(t, api.SendActivationEmail(f.App), userReq("POST /v1/users/{userId}/activation-email", f.admin, pending[0], nil)).Want(t, http.StatusAccepted)

	r := f.remind(t, f.admin, map[string]any{"allPending": true}, nil)
	r.Want(t, http.StatusAccepted)
	var rem licadmin.Reminder
	r.Decode(t, &rem)
	if rem.Status != licadmin.ReminderRunning || rem.Queued != 0 || !rem.AllPending || f.q.Len() != 1 {
		t.Fatalf("answer %+v with %d jobs, want running and one job", rem, f.q.Len())
	}
	if n := f.runJobs(t); n < 3 {
		t.Fatalf("%d invocations, want several (pages of 3 users, one page each)", n)
	}
	var read licadmin.Reminder
	g := f.reminder(t, f.admin, rem.ID)
	g.Want(t, http.StatusOK)
	g.Decode(t, &read)
	// The admin is pending too (its account was created by an operator).
	admin := f.MustCaller(t, f.admin)
	adminPending := 0
	if u, _ := f.App.Store.FindUser(context.Background(), admin.UserID, ""); u != nil && u.Status == licadmin.StatusPending {
		adminPending = 1
	}
	if read.Status != licadmin.ReminderDone || read.Queued != int64(9+adminPending) || read.Skipped != 1 {
		t.Fatalf("reminder %+v, want done, %d queued, 1 skipped (sent one just before)", read, 9+adminPending)
	}
	got := activationOutbox(t, f.Env)
	for _, id := range pending {
		if got[id] != 1 {
			t.Errorf("pending user %s has %d activation emails, want 1", id, got[id])
		}
	}
	if got[active] != 0 || got[other] != 0 {
		t.Errorf("the active user has %d, the other account's pending user %d, want none", got[active], got[other])
	}

	// The last job delivered again: nothing new.
	before := len(f.Scan(t))
	f.q.Send(context.Background(), []byte(`{"accountId":"`+f.acct+`","reminderId":"`+rem.ID+`"}`))
	f.runJobs(t)
	if after := len(f.Scan(t)); after != before {
		t.Fatalf("%d items, %d after the job delivered again", before, after)
	}

	// A job that cannot be queued: the reminder answers failed.
	f.q.Err = errors.New("queue down")
	r = f.remind(t, f.admin, map[string]any{"allPending": true}, nil)
	r.Want(t, http.StatusAccepted)
	r.Decode(t, &rem)
	f.reminder(t, f.admin, rem.ID).Decode(t, &read)
	if read.Status != licadmin.ReminderFailed || read.Error == nil {
		t.Fatalf("reminder whose job was not queued: %+v, want failed with a reason", read)
	}
	f.Invariants(t)
}

// TestRemindUsersGroups ensures that reminding users several per
// transaction keeps each user's own conditions: in groups where some users
// were sent a link less than 60 s ago, some are active and some were
// already reminded by the same reminder (a page done again), exactly the
// others get a new email, an audit record and their activationSentAt;
// the users counted queued are those reminded now or by the reminder
// before; the same users again (a job delivered again) change nothing;
// and a caller who is no admin gets EFORBIDDEN and changes nothing.
func TestRemindUsersGroups(t *testing.T) {
	f := newReminderFixture(t)
	st := f.App.Store
	bg := context.Background()
	admin := f.MustCaller(t, f.admin)
	now := time.Now().UTC()
	const n = store.RemindGroup + 15 // two groups
	type kind int
	const (
		fresh  kind = iota // reminded now
		recent             // sent a link 10 s ago: skipped
		active             // not pending: skipped
		before             // reminded by this reminder 5 min ago: counted, not sent again
	)
	var users []*licadmin.User
	kinds := map[string]kind{}
	var earlier []*licadmin.User
	for i := range n {
		u := &licadmin.User{ID: fmt.Sprintf("grp%02d", i), AccountID: f.acct, Email: fmt.Sprintf("grp%d@acme.test", i), FirstName: "Ada",
			LastName: "Lovelace", Language: "en", Role: licadmin.RoleUser, Status: licadmin.StatusPending, CreatedAt: now, UpdatedAt: now, Version: 1}
		if _, err := st.CreateUser(bg, admin, u, "acme.test", now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		k := kind(i % 4)
		switch k {
		case recent:
			if err := st.RequestActivationEmail(bg, admin, u, now.Add(-10*time.Second)); err != nil {
				t.Fatal(err)
			}
		case active:
			setStatus(t, f.Env, u.ID, licadmin.StatusActive)
		case before:
			earlier = append(earlier, u)
		}
		kinds[u.ID] = k
		users = append(users, u)
	}
	if q, err := st.RemindUsers(bg, admin, earlier, "r1", now.Add(-5*time.Minute)); err != nil || slices.Contains(q, false) {
		t.Fatalf("the earlier reminder: %v %v", q, err)
	}

	q, err := st.RemindUsers(bg, admin, users, "r1", now)
	if err != nil {
		t.Fatal(err)
	}
	outbox := activationOutbox(t, f.Env)
	audits := map[string]int{}
	for _, a := range f.AuditLog(t, f.acct) {
		if a.Action == store.ActionActivationEmail {
			audits[a.Target]++
		}
	}
	for i, u := range users {
		k := kinds[u.ID]
		wantQueued, wantEmails := k == fresh || k == before, 1
		if k == active {
			wantEmails = 0
		}
		if q[i] != wantQueued || outbox[u.ID] != wantEmails || audits[u.ID] != wantEmails {
			t.Errorf("user %s (kind %d): queued %v, %d emails, %d audit records; want %v, %d, %d",
				u.ID, k, q[i], outbox[u.ID], audits[u.ID], wantQueued, wantEmails, wantEmails)
		}
	}

	// The same users again for the same reminder: counted as before, and
	// nothing written.
	items := len(f.Scan(t))
	again, err := st.RemindUsers(bg, admin, users, "r1", now.Add(20*time.Second))
	if err != nil || !slices.Equal(again, q) {
		t.Fatalf("again: %v %v, want %v", again, err, q)
	}
	if got := len(f.Scan(t)); got != items {
		t.Fatalf("%d items, %d after the same reminder again", items, got)
	}

	// A caller who is no admin: refused, nothing written.
	plain := &licadmin.Caller{Email: users[0].Email, UserID: users[0].ID, AccountID: f.acct, Role: licadmin.RoleAdmin}
	if _, err := st.RemindUsers(bg, plain, users, "r2", now.Add(3*time.Minute)); licadmin.ErrorCode(err) != licadmin.EFORBIDDEN {
		t.Fatalf("a user who is no admin: %v, want EFORBIDDEN", err)
	}
	if got := len(f.Scan(t)); got != items {
		t.Fatalf("%d items, %d after a refused reminder", items, got)
	}
	f.Invariants(t)
}

// TestRemindAllPendingFaults ensures a failure between a page's two steps
// of a background reminder leaves it consistent: when the page's users
// were reminded but the reminder's progress could not be written, the job
// is reported failed and the reminder still shows the progress before the
// page; the job delivered again does the page again without a second link
// to anyone (the users remember this reminder) and counts them once.
func TestRemindAllPendingFaults(t *testing.T) {
	var failAdvance atomic.Bool
	opt, calls := apitest.Faults(func(op string, _ int) apitest.Fault {
		if failAdvance.Load() && op == "UpdateItem" {
			return apitest.Fail
		}
		return apitest.NoFault
	})
	f := newReminderFixture(t)
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	f.App.Reminders.Page = 3
	f.App.Reminders.MaxRunTime = time.Nanosecond // one page per invocation
	var pending []string
	for i := range 7 {
		pending = append(pending, f.user(t, fmt.Sprintf("p%d@acme.test", i)))
	}
	// The admin is pending too when its account was created by an operator.
	admin := f.MustCaller(t, f.admin)
	if u, _ := f.App.Store.FindUser(context.Background(), admin.UserID, ""); u != nil && u.Status == licadmin.StatusPending {
		pending = append(pending, admin.UserID)
	}
	r := f.remind(t, f.admin, map[string]any{"allPending": true}, nil)
	r.Want(t, http.StatusAccepted)
	var rem licadmin.Reminder
	r.Decode(t, &rem)

	jobs := f.q.Take()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs queued, want 1", len(jobs))
	}
	calls.Reset()
	failAdvance.Store(true)
	resp, err := f.App.Reminders.HandleSQS(apitest.AsFunction(context.Background(), "SendRemindersFunction"), apitest.SQSEvent(jobs[0]))
	failAdvance.Store(false)
	if err != nil || len(resp.BatchItemFailures) != 1 || calls.Get("UpdateItem") == 0 {
		t.Fatalf("page whose progress was lost: %+v %v after %d UpdateItem calls, want the job failed", resp, err, calls.Get("UpdateItem"))
	}
	if f.q.Len() != 0 {
		t.Fatalf("%d jobs queued by the failed invocation, want none", f.q.Len())
	}
	reminded := 0
	for _, n := range activationOutbox(t, f.Env) {
		reminded += n
	}
	if reminded != 3 {
		t.Fatalf("%d links after the failed page, want its 3 users'", reminded)
	}
	var read licadmin.Reminder
	f.reminder(t, f.admin, rem.ID).Decode(t, &read)
	if read.Status != licadmin.ReminderRunning || read.Queued != 0 || read.Skipped != 0 {
		t.Fatalf("reminder after the failed page: %+v, want running with nothing counted", read)
	}

	f.q.Send(context.Background(), []byte(jobs[0])) // SQS delivers the job again
	f.runJobs(t)
	f.reminder(t, f.admin, rem.ID).Decode(t, &read)
	if read.Status != licadmin.ReminderDone || read.Queued != int64(len(pending)) || read.Skipped != 0 {
		t.Fatalf("reminder %+v, want done with the %d pending users queued once", read, len(pending))
	}
	got := activationOutbox(t, f.Env)
	for _, id := range pending {
		if got[id] != 1 {
			t.Errorf("pending user %s has %d activation emails, want 1", id, got[id])
		}
	}
	f.Invariants(t)
}
