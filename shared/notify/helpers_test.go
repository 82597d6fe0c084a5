package notify_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ses"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/store"
)

func TestMain(m *testing.M) { os.Exit(apitest.RunTests(m)) }

// world is an account on a fresh table whose email goes to the SES
// emulator: its admin, its own email domain (so that its mail is told
// apart from other tests'), and the handlers the tests call.
type world struct {
	*apitest.Env
	mail   *apitest.Mail
	acct   string
	admin  string
	domain string
	sends  *sendCounter
	sleeps *sleepLog
}

// newWorld builds a world whose SES client fails SendEmail calls as fault
// decides (nil: no fault), and whose DynamoDB client dbOpts adjust.
func newWorld(t *testing.T, fault func(n int) error, dbOpts ...func(*dynamodb.Options)) *world {
	t.Helper()
	env := apitest.New(t, dbOpts...)
	sends := &sendCounter{fault: fault}
	w := &world{Env: env, domain: "n" + randomHex(4) + ".test", sends: sends, sleeps: &sleepLog{}}
	w.mail = env.WithEmail(t, sends.option())
	env.App.Notify.Sleep = w.sleeps.sleep
	w.admin = "admin@" + w.domain
	w.acct, _ = env.MustAccount(t, "Acme", w.admin)
	return w
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// user adds a user of role in lang and returns its id and email.
func (w *world) user(t *testing.T, name, lang, role string) (id, email string) {
	t.Helper()
	email = name + "@" + w.domain
	r := w.do(t, api.CreateUser(w.App), apitest.Request{Route: "POST /v1/users", Email: w.admin, Body: map[string]string{
		"email": email, "firstName": strings.ToUpper(name[:1]) + name[1:], "lastName": "Test", "language": lang, "role": role}})
	r.Want(t, http.StatusCreated)
	return r.User(t).ID, email
}

func (w *world) do(t *testing.T, h apigw.Handler, r apitest.Request) *apitest.Response {
	t.Helper()
	return apitest.Do(t, h, r)
}

func (w *world) assign(t *testing.T, userID, tier string) *apitest.Response {
	t.Helper()
	return w.do(t, api.AssignLicense(w.App), apitest.Request{Route: "POST /v1/users/{userId}/license", Params: map[string]string{"userId": userID}, Email: w.admin, Body: map[string]string{"tier": tier}})
}

func (w *world) remove(t *testing.T, userID string) *apitest.Response {
	t.Helper()
	return w.do(t, api.RemoveLicense(w.App), apitest.Request{Route: "DELETE /v1/users/{userId}/license", Params: map[string]string{"userId": userID}, Email: w.admin})
}

func (w *world) setAlert(t *testing.T, caller, tier string, body any) *apitest.Response {
	t.Helper()
	return w.do(t, api.SetAlertThreshold(w.App), apitest.Request{Route: "PATCH /v1/licenses/{tier}", Params: map[string]string{"tier": tier}, Email: caller, Body: body})
}

// outbox returns every outbox item of the table.
func (w *world) outbox(t *testing.T) []*store.Outbox {
	t.Helper()
	var out []*store.Outbox
	for _, it := range w.Scan(t) {
		if o := store.OutboxFromImage(it); o != nil {
			out = append(out, o)
		}
	}
	return out
}

// outboxOf returns the outbox items to userID.
func (w *world) outboxOf(t *testing.T, userID string) []*store.Outbox {
	t.Helper()
	var out []*store.Outbox
	for _, o := range w.outbox(t) {
		if o.UserID == userID {
			out = append(out, o)
		}
	}
	return out
}

// event wraps stream records as the Lambda event.
func event(recs []events.DynamoDBEventRecord) events.DynamoDBEvent {
	return events.DynamoDBEvent{Records: recs}
}

// queue hands the stream records written since the last Next or Drain
// to the stream function once, which queues the emails of the changes
// they record (a license gained queues its confirmation), and returns the
// records that this wrote (the outbox INSERTs), not yet handled: what the
// stream delivers next.
func (w *world) queue(t *testing.T) []events.DynamoDBEventRecord {
	t.Helper()
	resp, err := w.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), event(w.mail.Next(t)))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("queue the emails of the change: %+v %v", resp, err)
	}
	return w.mail.Next(t)
}

// withClock gives the world's delivery a test clock, starting now.
func (w *world) withClock() *apitest.Clock {
	clock := apitest.NewClock(time.Now().UTC())
	w.App.Notify.Now = clock.Now
	return clock
}

// assignQueued assigns userID an eco license, brings clock to the time
// the change was written, and has the stream queue the confirmation: it
// returns the stream records that this wrote (queue) and the index of the
// confirmation's outbox INSERT among them, not yet delivered.
func (w *world) assignQueued(t *testing.T, clock *apitest.Clock, userID string) ([]events.DynamoDBEventRecord, int) {
	t.Helper()
	w.assign(t, userID, "eco").Want(t, http.StatusOK)
	clock.Advance(time.Now().UTC().Sub(clock.Now())) // the items' time
	recs := w.queue(t)
	return recs, outboxRecord(t, recs)
}

// outboxRecord returns the index of the first outbox INSERT in recs.
func outboxRecord(t *testing.T, recs []events.DynamoDBEventRecord) int {
	t.Helper()
	for i, r := range recs {
		if r.EventName == "INSERT" && strings.HasPrefix(r.Change.Keys["pk"].String(), "OUTBOX#") {
			return i
		}
	}
	t.Fatal("no outbox INSERT among the stream records")
	return -1
}

// sendCounter counts SendEmail calls and injects the faults of fault, as
// SES would answer them, before the call reaches the emulator.
type sendCounter struct {
	n     atomic.Int64
	fault func(n int) error
}

func (c *sendCounter) option() func(*ses.Options) {
	mw := middleware.FinalizeMiddlewareFunc("injectSESFaults", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		n := int(c.n.Add(1))
		if c.fault != nil {
			if err := c.fault(n); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
		}
		return next.HandleFinalize(ctx, in)
	})
	return func(o *ses.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Finalize.Add(mw, middleware.After) })
	}
}

// sleepLog records the waits between sends instead of waiting.
type sleepLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (l *sleepLog) sleep(_ context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits = append(l.waits, d)
	return nil
}

func (l *sleepLog) get() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.waits...)
}

// wantOutbox fails unless o has status and attempts.
func wantOutbox(t *testing.T, o *store.Outbox, status string, attempts int64) {
	t.Helper()
	if o.Status != status || o.Attempts != attempts {
		t.Fatalf("outbox %s: status %q attempts %d (last error %q), want %q after %d", o.ID, o.Status, o.Attempts, o.LastError, status, attempts)
	}
}
