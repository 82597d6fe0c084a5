package notify_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ses/types"
	"github.com/aws/smithy-go"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/notify"
	"licenseadmin/shared/store"
)

// TestAssignmentConfirmation ensures assign and transfer each email the
// new holder once, in the holder's language, from the configured sender,
// with a text and an HTML part; that the outbox item ends "sent" with the
// message id; and that a refused change queues no email.
func TestAssignmentConfirmation(t *testing.T) {
	w := newWorld(t, nil)
	w.MustLicenses(t, w.acct, licadmin.Eco, 3)
	fr, frEmail := w.user(t, "amelie", "fr", "user")
	en, enEmail := w.user(t, "bob", "en", "user")

	w.assign(t, fr, "eco").Want(t, http.StatusOK)
	w.mail.Drain(t)
	got := w.mail.To(t, frEmail)
	if len(got) != 1 {
		t.Fatalf("%d emails to the new holder, want 1", len(got))
	}
	m := got[0]
	if m.From != apitest.SenderEmail || m.Subject != "Une licence Éco vous est attribuée" ||
		!strings.Contains(m.Body.Text, "Bonjour Amelie") || !strings.Contains(m.Body.HTML, `<html lang="fr">`) || !strings.Contains(m.Body.HTML, "<strong>Éco</strong>") {
		t.Fatalf("email from %q subject %q\ntext %s\nhtml %s", m.From, m.Subject, m.Body.Text, m.Body.HTML)
	}
	items := w.outboxOf(t, fr)
	if len(items) != 1 {
		t.Fatalf("%d outbox items for the holder, want 1", len(items))
	}
	wantOutbox(t, items[0], store.OutboxSent, 1)
	if items[0].MessageID != m.MessageID {
		t.Fatalf("outbox message id %q, the emulator stored %q", items[0].MessageID, m.MessageID)
	}

	w.do(t, api.TransferLicense(w.App), apitest.Request{Route: "POST /v1/users/{userId}/license/transfer", Params: map[string]string{"userId": fr},
		Email: w.admin, Body: map[string]string{"toUserId": en}}).Want(t, http.StatusOK)
	w.mail.Drain(t)
	if got := w.mail.To(t, enEmail); len(got) != 1 || got[0].Subject != "Your Eco license is ready" || !strings.Contains(got[0].Body.Text, "Hello Bob") {
		t.Fatalf("transfer target got %+v, want one English confirmation", got)
	}
	if got := w.mail.To(t, frEmail); len(got) != 1 {
		t.Fatalf("the former holder got %d emails, want still 1", len(got))
	}

	// A refused change writes no outbox item and sends nothing.
	n := len(w.outbox(t))
	w.assign(t, fr, "pro").WantProblem(t, http.StatusConflict, licadmin.ENOLICENSE)
	w.assign(t, en, "eco").WantProblem(t, http.StatusConflict, licadmin.ELICENSEASSIGNED)
	w.mail.Drain(t)
	if got := len(w.outbox(t)); got != n {
		t.Fatalf("refused changes wrote %d outbox items", got-n)
	}
	w.Invariants(t)
}

// TestLicenseGainedQueuedOnce ensures the confirmations are queued from the
// table's stream for exactly the users that gained a license — assigned,
// given one by a transfer, assigned in bulk — and for no other change of a
// license (a modify, the former holder of a transfer, a remove); that each
// names the tier the user gained, and that the change's records handled
// twice (a redelivered stream batch) queue each confirmation once.
func TestLicenseGainedQueuedOnce(t *testing.T) {
	w := newWorld(t, nil)
	w.MustLicenses(t, w.acct, licadmin.Eco, 3)
	w.MustLicenses(t, w.acct, licadmin.Advanced, 1)
	a, _ := w.user(t, "ann", "en", "user")
	b, bEmail := w.user(t, "ben", "fr", "user")
	c, _ := w.user(t, "cid", "en", "user")
	d, _ := w.user(t, "dee", "en", "user")
	w.mail.Drain(t)

	w.assign(t, a, "eco").Want(t, http.StatusOK)
	w.do(t, api.ModifyLicense(w.App), apitest.Request{Route: "PATCH /v1/users/{userId}/license", Params: map[string]string{"userId": a},
		Email: w.admin, Body: map[string]string{"tier": "advanced"}}).Want(t, http.StatusOK)
	w.do(t, api.TransferLicense(w.App), apitest.Request{Route: "POST /v1/users/{userId}/license/transfer", Params: map[string]string{"userId": a},
		Email: w.admin, Body: map[string]string{"toUserId": b}}).Want(t, http.StatusOK)
	w.remove(t, b).Want(t, http.StatusOK)
	w.do(t, api.BulkLicenses(w.App), apitest.Request{Route: "POST /v1/licenses/bulk", Email: w.admin,
		Body: map[string]any{"action": "assign", "tier": "eco", "userIds": []string{c, d}}}).Want(t, http.StatusOK)
	if n := len(w.outbox(t)); n != 0 {
		t.Fatalf("the license changes wrote %d outbox items themselves, want 0 (the stream queues them)", n)
	}

	recs := w.mail.Next(t)
	for range 2 {
		resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs))
		if err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatalf("handle: %+v %v", resp, err)
		}
	}
	want := map[string]licadmin.Tier{a: licadmin.Eco, b: licadmin.Advanced, c: licadmin.Eco, d: licadmin.Eco}
	got := map[string][]licadmin.Tier{}
	for _, o := range w.outbox(t) {
		if o.Kind == licadmin.EmailLicenseAssigned {
			got[o.UserID] = append(got[o.UserID], o.Tier)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("confirmations queued for %v, want one each for %v", got, want)
	}
	for id, tier := range want {
		if len(got[id]) != 1 || got[id][0] != tier {
			t.Fatalf("confirmations of %s: %v, want one of %s", id, got[id], tier)
		}
	}
	w.mail.Drain(t)
	if m := w.mail.To(t, bEmail); len(m) != 1 || m[0].Subject != "Une licence Avancée vous est attribuée" {
		t.Fatalf("the transfer's new holder got %+v, want one French confirmation of Advanced", m)
	}
	w.Invariants(t)
}

// TestOutboxDeliveredTwiceSendsOnce ensures idempotent delivery: the same
// stream record handled again, one after the other or by five concurrent
// invocations, sends one email.
func TestOutboxDeliveredTwiceSendsOnce(t *testing.T) {
	w := newWorld(t, nil)
	w.MustLicenses(t, w.acct, licadmin.Eco, 5)
	u, email := w.user(t, "carla", "en", "user")
	v, vEmail := w.user(t, "dan", "en", "user")
	w.mail.Drain(t)

	w.assign(t, u, "eco").Want(t, http.StatusOK)
	recs := w.queue(t)
	for range 2 {
		resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs))
		if err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatalf("handle: %+v %v", resp, err)
		}
	}
	if got := w.mail.To(t, email); len(got) != 1 {
		t.Fatalf("%d emails for one record delivered twice, want 1", len(got))
	}
	wantOutbox(t, w.outboxOf(t, u)[0], store.OutboxSent, 1)

	w.assign(t, v, "eco").Want(t, http.StatusOK)
	recs = w.queue(t)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs))
		}()
	}
	wg.Wait()
	// A delivery that found the item claimed by another reports a failure
	// and is retried; the retry finds it sent.
	resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("handle after the race: %+v %v", resp, err)
	}
	if got := w.mail.To(t, vEmail); len(got) != 1 {
		t.Fatalf("%d emails for one record delivered by 5 concurrent invocations, want 1", len(got))
	}
	if n := w.sends.n.Load(); n != 2 {
		t.Fatalf("%d SendEmail calls for two emails", n)
	}
}

// throttled is SES's answer when the sending rate is exceeded.
func throttled() error {
	return &smithy.GenericAPIError{Code: "Throttling", Message: "Maximum sending rate exceeded."}
}

// TestThrottlingRetriedWithBackoff ensures a throttled send is retried
// within the delivery, with growing waits, and sends once.
func TestThrottlingRetriedWithBackoff(t *testing.T) {
	w := newWorld(t, func(n int) error {
		if n <= 2 {
			return throttled()
		}
		return nil
	})
	w.MustLicenses(t, w.acct, licadmin.Eco, 2)
	u, email := w.user(t, "erin", "en", "user")
	w.assign(t, u, "eco").Want(t, http.StatusOK)
	w.mail.Drain(t)
	if got := w.mail.To(t, email); len(got) != 1 {
		t.Fatalf("%d emails after 2 throttled sends, want 1", len(got))
	}
	wantOutbox(t, w.outboxOf(t, u)[0], store.OutboxSent, 3)
	waits := w.sleeps.get()
	if len(waits) != 2 || waits[0] <= 0 || waits[1] < waits[0] {
		t.Fatalf("waits between sends %v, want two, growing", waits)
	}
}

// TestThrottlingExhaustedLeftToSweeper ensures that when throttling
// lasts longer than one delivery's sends, the outbox item goes back to
// pending with the error seen, due at its retry time, and is counted as
// deferred; the stream record is not reported failed, so the records
// behind it are handled in the same batch (another user's confirmation is
// queued) instead of waiting for SES; once SES recovers the sweeper sends
// the email once, and a late redelivery of the record sends nothing.
func TestThrottlingExhaustedLeftToSweeper(t *testing.T) {
	var throttling sync.Mutex
	on := true
	w := newWorld(t, func(int) error {
		throttling.Lock()
		defer throttling.Unlock()
		if on {
			return throttled()
		}
		return nil
	})
	counts := &emailCounts{}
	w.App.Notify.Metrics = counts
	clock := w.withClock()
	w.MustLicenses(t, w.acct, licadmin.Eco, 3)
	u, email := w.user(t, "fay", "fr", "user")
	v, vEmail := w.user(t, "gus", "en", "user")
	w.mail.Drain(t)
	recs, i := w.assignQueued(t, clock, u)
	w.assign(t, v, "eco").Want(t, http.StatusOK)
	batch := append(recs[i:i+1:i+1], w.mail.Next(t)...) // u's email, then v's change

	resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(batch))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("handle: %+v %v, want no record reported failed (the sweeper has the email)", resp, err)
	}
	o := w.outboxOf(t, u)[0]
	wantOutbox(t, o, store.OutboxPending, notify.DefaultSendAttempts)
	if !strings.Contains(o.LastError, "Throttling") {
		t.Fatalf("last error %q, want the throttling", o.LastError)
	}
	if got := w.mail.To(t, email); len(got) != 0 {
		t.Fatalf("%d emails while throttled", len(got))
	}
	if n := counts.deferred.Load(); n != 1 {
		t.Fatalf("%d deliveries counted deferred, want 1", n)
	}
	if got := w.outboxOf(t, v); len(got) != 1 {
		t.Fatalf("%d confirmations queued for the user behind the throttled email, want 1", len(got))
	}

	throttling.Lock()
	on = false
	throttling.Unlock()
	if res := w.sweep(t); res.Due != 0 {
		t.Fatalf("sweep before the retry time: %+v, want nothing due", res)
	}
	clock.Advance(notify.RetryDelay(notify.DefaultSendAttempts, notify.DefaultSendAttempts) + time.Second)
	if res := w.sweep(t); res.Delivered != 1 {
		t.Fatalf("sweep at the retry time: %+v, want the email delivered", res)
	}
	if got := w.mail.To(t, email); len(got) != 1 {
		t.Fatalf("%d emails after the sweep, want 1", len(got))
	}
	wantOutbox(t, w.outboxOf(t, u)[0], store.OutboxSent, notify.DefaultSendAttempts+1)

	resp, err = w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs[i:i+1]))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("late redelivery: %+v %v", resp, err)
	}
	w.mail.Drain(t) // v's confirmation, through the stream
	if got, gotV := w.mail.To(t, email), w.mail.To(t, vEmail); len(got) != 1 || len(gotV) != 1 {
		t.Fatalf("%d and %d emails, want one each", len(got), len(gotV))
	}
}

// TestPermanentFailureMarkedFailed ensures that an email SES refuses for
// good is not retried: the outbox item is "failed" with the reason, an
// error is logged, the record is not reported failed (it would block the
// stream), and a redelivery sends nothing.
func TestPermanentFailureMarkedFailed(t *testing.T) {
	w := newWorld(t, func(int) error {
		return &types.MessageRejected{Message: aws.String("Email address is not verified.")}
	})
	var logs bytes.Buffer
	w.App.Notify.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	w.MustLicenses(t, w.acct, licadmin.Eco, 2)
	u, email := w.user(t, "gus", "en", "user")
	w.mail.Drain(t)
	w.assign(t, u, "eco").Want(t, http.StatusOK)
	recs := w.queue(t)
	resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("handle: %+v %v, want the record done", resp, err)
	}
	o := w.outboxOf(t, u)[0]
	wantOutbox(t, o, store.OutboxFailed, 1)
	if !strings.Contains(o.LastError, "MessageRejected") || !strings.Contains(o.LastError, "not verified") {
		t.Fatalf("last error %q, want SES's reason", o.LastError)
	}
	if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), o.ID) {
		t.Fatalf("no error log naming the outbox item:\n%s", logs.String())
	}
	sends := w.sends.n.Load()
	if _, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs)); err != nil {
		t.Fatal(err)
	}
	if w.sends.n.Load() != sends || len(w.mail.To(t, email)) != 0 {
		t.Fatal("a failed email was sent again")
	}
	wantOutbox(t, w.outboxOf(t, u)[0], store.OutboxFailed, 1)
}

// TestLowPoolAlertOncePerCrossing ensures the low-pool alert: when a
// tier's available licenses fall to the threshold every admin gets one
// email in their language; further assignments send none; after the pool
// rose above the threshold and fell again, one more; a redelivered record
// sends nothing new; plain users get none.
func TestLowPoolAlertOncePerCrossing(t *testing.T) {
	w := newWorld(t, nil)
	w.MustLicenses(t, w.acct, licadmin.Eco, 3)
	_, admin2 := w.user(t, "hugo", "fr", "admin")
	u1, plain := w.user(t, "ivy", "en", "user")
	u2, _ := w.user(t, "jon", "en", "user")
	u3, _ := w.user(t, "kim", "en", "user")
	w.setAlert(t, w.admin, "eco", map[string]int{"alertThreshold": 1}).Want(t, http.StatusOK)

	alerts := func(t *testing.T, want int) {
		t.Helper()
		w.mail.Drain(t)
		for _, a := range []string{w.admin, admin2} {
			if got := w.mail.To(t, a); len(got) != want {
				t.Fatalf("%s has %d alerts, want %d", a, len(got), want)
			}
		}
		for _, m := range w.mail.To(t, plain) {
			if strings.Contains(m.Subject, "running low") {
				t.Fatalf("a plain user got the alert %q", m.Subject)
			}
		}
	}
	w.assign(t, u1, "eco").Want(t, http.StatusOK) // available 2
	alerts(t, 0)
	w.assign(t, u2, "eco").Want(t, http.StatusOK) // available 1: crossing
	alerts(t, 1)
	en, fr := w.mail.To(t, w.admin)[0], w.mail.To(t, admin2)[0]
	if en.Subject != "Eco licenses are running low" || !strings.Contains(en.Body.Text, "only 1 Eco license left") {
		t.Fatalf("English alert %q:\n%s", en.Subject, en.Body.Text)
	}
	if fr.Subject != "Il reste peu de licences Éco" || !strings.Contains(fr.Body.Text, "Bonjour Hugo") {
		t.Fatalf("French alert %q:\n%s", fr.Subject, fr.Body.Text)
	}
	w.assign(t, u3, "eco").Want(t, http.StatusOK) // available 0
	alerts(t, 1)
	w.remove(t, u3).Want(t, http.StatusOK) // 1
	w.remove(t, u2).Want(t, http.StatusOK) // 2
	alerts(t, 1)
	w.assign(t, u2, "eco").Want(t, http.StatusOK) // 1 again: a new crossing
	recs := w.mail.Next(t)
	for range 2 {
		if resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs)); err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatalf("handle: %+v %v", resp, err)
		}
	}
	alerts(t, 2)
	w.Invariants(t)
}

// TestSetAlertThreshold covers PATCH /v1/licenses/{tier}: 200 with the
// pool, the value in the summary, an audit record per change and none for
// the same value; 400 for a bad value, 404 for an unknown tier, 403 for a
// plain user.
func TestSetAlertThreshold(t *testing.T) {
	w := newWorld(t, nil)
	w.MustLicenses(t, w.acct, licadmin.Pro, 4)
	_, plain := w.user(t, "lea", "en", "user")
	audits := func() int {
		recs, err := w.App.Store.AuditLog(context.Background(), w.acct, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	n := audits()
	r := w.setAlert(t, w.admin, "pro", map[string]int{"alertThreshold": 2})
	r.Want(t, http.StatusOK)
	var p licadmin.Pool
	r.Decode(t, &p)
	if got := p.Tier(licadmin.Pro); got.AlertThreshold != 2 || got.Purchased != 4 || got.Available != 4 {
		t.Fatalf("pro = %+v, want threshold 2 of 4 available", got)
	}
	var summary licadmin.Pool
	sr := w.do(t, api.GetLicensePool(w.App), apitest.Request{Route: "GET /v1/licenses", Email: w.admin})
	sr.Decode(t, &summary)
	if summary.Tier(licadmin.Pro).AlertThreshold != 2 || summary.Tier(licadmin.Eco).AlertThreshold != 0 {
		t.Fatalf("summary %+v", summary)
	}
	if got := audits(); got != n+1 {
		t.Fatalf("%d audit records for one change", got-n)
	}
	recs, _ := w.App.Store.AuditLog(context.Background(), w.acct, 1)
	if recs[0].Action != store.ActionAlertThreshold || recs[0].Target != "pro" || recs[0].Details["to"] != "2" || recs[0].Actor != w.admin {
		t.Fatalf("audit %+v", recs[0])
	}
	w.setAlert(t, w.admin, "pro", map[string]int{"alertThreshold": 2}).Want(t, http.StatusOK)
	if got := audits(); got != n+1 {
		t.Fatal("setting the same threshold wrote an audit record")
	}
	for _, body := range []any{
		map[string]any{"alertThreshold": -1},
		map[string]any{"alertThreshold": 1.5},
		map[string]any{"alertThreshold": 1_000_001},
		map[string]any{"alertThreshold": "3"},
		map[string]any{"alertThreshold": nil},
		map[string]any{},
		map[string]any{"alertThreshold": 1, "tier": "pro"},
	} {
		w.setAlert(t, w.admin, "pro", body).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	w.setAlert(t, w.admin, "pro", map[string]int{"alertThreshold": 1_000_000}).Want(t, http.StatusOK)
	w.setAlert(t, w.admin, "gold", map[string]int{"alertThreshold": 1}).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	w.setAlert(t, plain, "pro", map[string]int{"alertThreshold": 1}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	w.setAlert(t, "", "pro", map[string]int{"alertThreshold": 1}).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
}
