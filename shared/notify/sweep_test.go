package notify_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/notify"
	"licenseadmin/shared/store"
)

// emailCounts counts the deliveries left to the sweeper and the emails
// it gave up (notify.Metrics).
type emailCounts struct{ deferred, givenUp atomic.Int64 }

func (c *emailCounts) EmailDeferred(string) { c.deferred.Add(1) }
func (c *emailCounts) EmailGivenUp(string)  { c.givenUp.Add(1) }

// sesOutage is a fault that throttles every send while on.
type sesOutage struct {
	mu sync.Mutex
	on bool
}

func (o *sesOutage) set(on bool) { o.mu.Lock(); o.on = on; o.mu.Unlock() }

func (o *sesOutage) fault(int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.on {
		return throttled()
	}
	return nil
}

// sweepWorld is a world whose emails were queued while SES failed and
// whose stream delivery left them to the sweeper (each record handled
// once: a delivery whose sends fail is not retried by the stream).
func sweepWorld(t *testing.T, users int) (*world, *apitest.Clock, *sesOutage, []string) {
	t.Helper()
	outage := &sesOutage{on: true}
	w := newWorld(t, outage.fault)
	clock := w.withClock()
	w.App.Notify.SendAttempts = 1
	// More licenses than users, so that no low-pool alert joins the
	// confirmations.
	w.MustLicenses(t, w.acct, licadmin.Eco, int64(users)+10)
	w.mail.Drain(t) // the account's own records
	var emails []string
	for i := range users {
		u, email := w.user(t, fmt.Sprintf("u%d", i), "en", "user")
		w.assign(t, u, "eco").Want(t, http.StatusOK)
		emails = append(emails, email)
	}
	clock.Advance(time.Now().UTC().Sub(clock.Now())) // the items' time
	recs := w.queue(t)
	if _, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs)); err != nil {
		t.Fatal(err)
	}
	return w, clock, outage, emails
}

// sweep runs the outbox sweeper once, as its scheduled function does.
func (w *world) sweep(t *testing.T) notify.SweepResult {
	t.Helper()
	res, err := w.App.Notify.Sweep(apitest.AsFunction(context.Background(), "SweepOutboxFunction"))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSweeperRedrivesAfterOutage ensures no email is lost when SES fails
// for longer than a delivery's sends: the sweeper leaves new items to
// the stream for a grace period, retries with growing waits while SES
// still fails, and once it recovers sends every email exactly once; sent
// items leave the sweeper's index, and a late stream redelivery sends
// nothing again.
func TestSweeperRedrivesAfterOutage(t *testing.T) {
	const users = 3
	w, clock, outage, emails := sweepWorld(t, users)
	// Just queued or released by the stream: not due yet.
	if res := w.sweep(t); res.Due != 0 {
		t.Fatalf("sweep right after the stream: %+v, want nothing due", res)
	}
	// Still failing: each due item (past the stream's grace, or its retry
	// time) is tried and released again, later.
	clock.Advance(store.OutboxSweepGrace + time.Second)
	if res := w.sweep(t); res.Due != users || res.Retrying != users {
		t.Fatalf("sweep during the outage: %+v, want %d retrying", res, users)
	}
	if res := w.sweep(t); res.Due != 0 {
		t.Fatalf("sweep right after a retry: %+v, want nothing due (backoff)", res)
	}
	for _, o := range w.outbox(t) {
		if o.Status != store.OutboxPending || o.Attempts < 1 || o.LastError == "" {
			t.Fatalf("outbox %+v during the outage, want pending with the error seen", o)
		}
	}
	// SES recovers: the next due sweep sends each email once.
	outage.set(false)
	clock.Advance(notify.MaxRetryDelay)
	if res := w.sweep(t); res.Delivered != users {
		t.Fatalf("sweep after the outage: %+v, want %d delivered", res, users)
	}
	clock.Advance(notify.MaxRetryDelay)
	if res := w.sweep(t); res.Due != 0 {
		t.Fatalf("sweep after delivery: %+v, want nothing due", res)
	}
	sends := w.sends.n.Load()
	w.mail.Drain(t) // the stream's own late redelivery, if any
	if w.sends.n.Load() != sends {
		t.Fatal("a sent email was sent again")
	}
	for _, email := range emails {
		if got := w.mail.To(t, email); len(got) != 1 {
			t.Fatalf("%s got %d emails, want exactly 1", email, len(got))
		}
	}
	for _, o := range w.outbox(t) {
		if o.Status != store.OutboxSent {
			t.Fatalf("outbox %+v, want sent", o)
		}
	}
}

// failReleases is a DynamoDB client option that, while on, fails the
// update that hands an outbox item back after a failed delivery (the one
// that writes lastError) before it reaches DynamoDB.
type failReleases struct{ on atomic.Bool }

func (f *failReleases) option(o *dynamodb.Options) {
	mw := middleware.InitializeMiddlewareFunc("failOutboxReleases", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if u, ok := in.Parameters.(*dynamodb.UpdateItemInput); ok && f.on.Load() && slices.Contains(slices.Collect(maps.Values(u.ExpressionAttributeNames)), "lastError") {
			return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "InternalServerError", Message: "injected failure", Fault: smithy.FaultServer}
		}
		return next.HandleInitialize(ctx, in)
	})
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Initialize.Add(mw, middleware.Before) })
}

// TestReleaseFailureLeftToSweeper ensures an email is not lost when the
// write that hands it back after failed sends fails too: the stream takes
// the record as done, the item stays claimed, and the sweeper, which
// leaves it alone while its claim's lease lasts, sends it once after.
func TestReleaseFailureLeftToSweeper(t *testing.T) {
	outage := &sesOutage{on: true}
	releases := &failReleases{}
	w := newWorld(t, outage.fault, releases.option)
	clock := w.withClock()
	w.App.Notify.SendAttempts = 1
	w.App.Notify.Lease = 2 * store.OutboxSweepGrace // outlasts the item's first due time
	w.MustLicenses(t, w.acct, licadmin.Eco, 3)
	u, email := w.user(t, "hal", "en", "user")
	w.mail.Drain(t)
	recs, i := w.assignQueued(t, clock, u)

	releases.on.Store(true)
	resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(recs[i:i+1]))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("handle: %+v %v, want the record done (the sweeper has the email)", resp, err)
	}
	releases.on.Store(false)
	outage.set(false)
	if o := w.outboxOf(t, u)[0]; o.Status != store.OutboxSending {
		t.Fatalf("outbox %+v, want still claimed (its release failed)", o)
	}

	clock.Advance(store.OutboxSweepGrace + time.Second)
	if res := w.sweep(t); res.Due != 1 || res.Busy != 1 || res.Delivered != 0 {
		t.Fatalf("sweep while the claim lasts: %+v, want the item due and busy", res)
	}
	clock.Advance(w.App.Notify.Lease)
	if res := w.sweep(t); res.Delivered != 1 {
		t.Fatalf("sweep after the claim's lease: %+v, want the email delivered", res)
	}
	if got := w.mail.To(t, email); len(got) != 1 {
		t.Fatalf("%d emails, want 1", len(got))
	}
	wantOutbox(t, w.outboxOf(t, u)[0], store.OutboxSent, 1)
}

// TestSweeperGivesUp ensures an email that SES keeps refusing is marked
// failed once it reached the attempt limit, counted for the alarm, and
// never tried again.
func TestSweeperGivesUp(t *testing.T) {
	w, clock, _, emails := sweepWorld(t, 2)
	g := &emailCounts{}
	w.App.Notify.Metrics = g
	w.App.Notify.MaxAttempts = 3
	ctx := apitest.AsFunction(context.Background(), "SweepOutboxFunction")
	for range 6 {
		clock.Advance(notify.MaxRetryDelay)
		if _, err := w.App.Notify.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if g.givenUp.Load() != 2 {
		t.Fatalf("%d emails given up, want 2", g.givenUp.Load())
	}
	for _, o := range w.outbox(t) {
		if o.Status != store.OutboxFailed || o.Attempts != 3 || o.LastError == "" {
			t.Fatalf("outbox %+v, want failed after 3 attempts with the reason", o)
		}
	}
	sends := w.sends.n.Load()
	clock.Advance(notify.MaxRetryDelay)
	if res, _ := w.App.Notify.Sweep(ctx); res.Due != 0 || w.sends.n.Load() != sends {
		t.Fatalf("a given-up email was tried again: %+v", res)
	}
	for _, email := range emails {
		if got := w.mail.To(t, email); len(got) != 0 {
			t.Fatalf("%s got %d emails", email, len(got))
		}
	}
}
