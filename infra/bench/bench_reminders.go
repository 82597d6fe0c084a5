package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin"
	"licenseadmin/infra/localsqs"
	"licenseadmin/infra/stack"
	"licenseadmin/infra/template"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// The reminder figures: POST /v1/activation-emails {"allPending":true} on
// an account of reminderUsers pending users, through the local API, from
// the request to the reminder's end as GET /v1/activation-emails/{id}
// reads it. The reminder function runs as `run` runs it: its queue is the
// local SQS with the template's settings, each invocation bounded by the
// function's Timeout. An invocation also ends reminderRunTime after it
// started (the function's MaxRunTime, as the tests force continuations),
// so that the run takes several invocations and each continuation is
// measured: without it the fastest runs would fit in one invocation of
// 840 s, and the continuation would go unmeasured.

// reminderFunction is the reminder function's logical id, and
// reminderQueue its queue's.
const (
	reminderFunction = "SendRemindersFunction"
	reminderQueue    = "ReminderQueue"
)

// reminderUsers is the size of the reminder figures' account: 100,000
// with --large (several minutes), 3,000 in the full run, 1,000 quick.
func (c benchConfig) reminderUsers() int {
	switch {
	case c.large:
		return 100_000
	case c.quick:
		return 1_000
	}
	return 3_000
}

// reminderRunTime is how long one invocation of the reminder function
// works before it continues in a fresh one.
func (c benchConfig) reminderRunTime() time.Duration {
	if c.large {
		return 30 * time.Second
	}
	return 2 * time.Second
}

// reminderFigures seeds the account, reminds its pending users and
// checks that each got exactly one new activation email.
func (b *bench) reminderFigures(ctx context.Context) error {
	n := b.cfg.reminderUsers()
	b.figs.define(figureDef{ID: "reminders.users", Title: "pending users reminded", Unit: "users",
		Meaning: "the account's pending users (its first admin, and the others seeded with BatchWriteItem as POST /v1/users writes them) that POST /v1/activation-emails {\"allPending\":true} reminds"})
	b.figs.define(figureDef{ID: "reminders.per_s", Title: "bulk reminder of every pending user", Unit: "users/s",
		Meaning: "pending users reminded per second, from the POST to the reminder's end (status done, read with GET /v1/activation-emails/{id}): the reminder function's pages, groups and continuations through the local SQS; the emails' delivery (the stream) is not running"})
	b.figs.define(figureDef{ID: "reminders.invocations", Title: "reminder function invocations", Unit: "invocations",
		Meaning: fmt.Sprintf("invocations of the reminder function the reminder took: the first and its continuations through the queue; each works at most %s here (MaxRunTime) so that continuations are measured; in AWS each works up to its Timeout less 60 s", b.cfg.reminderRunTime())})
	b.figs.define(figureDef{ID: "reminders.reached", Title: "pending users with exactly one new email", Unit: "users",
		Meaning: "pending users with exactly one new activation email in the outbox (each mints its own single-use link when it leaves) and remindedBy this reminder; must be reminders.users",
		Target:  fmt.Sprintf("= %d", n), Check: exactly(float64(n))})
	b.figs.define(figureDef{ID: "reminders.requests", Title: "DynamoDB requests per reminded user", Unit: "req/user",
		Meaning: "every DynamoDB request of the request, the reminder function and the progress reads (every attempt), per reminded user, counted by SDK middleware"})

	acct, err := b.stack.newAccount(ctx, "reminders", nil)
	if err != nil {
		return err
	}
	// The operator's first admin is pending too, as an operator creates
	// it: with n-1 seeded users the account has n pending users.
	start := time.Now()
	const slice = 5_000
	for from := 0; from < n-1; from += slice {
		if _, err := b.stack.seedUsers(ctx, acct, fmt.Sprintf("remind%d", from), min(slice, n-1-from)); err != nil {
			return err
		}
	}
	b.logf("reminders: %d pending users written in %s", n-1, time.Since(start).Round(time.Second))

	q, invocations, stop, err := b.stack.startReminderQueue(ctx)
	if err != nil {
		return err
	}
	defer stop()
	b.stack.app.Reminders.MaxRunTime = b.cfg.reminderRunTime()
	defer func() { b.stack.app.Reminders.MaxRunTime = 0 }()
	b.stack.app.Reminders.Queue = q
	defer func() { b.stack.app.Reminders.Queue = nil }()
	// The function logs a line per continuation, as in AWS; the terminal
	// gets the progress instead.
	logger := b.stack.app.Reminders.Logger
	b.stack.app.Reminders.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	defer func() { b.stack.app.Reminders.Logger = logger }()

	b.stack.counter.reset()
	load := loadAverage()
	start = time.Now()
	r, err := b.stack.expect(ctx, 202, "POST", "/v1/activation-emails", acct.token, map[string]any{"allPending": true})
	if err != nil {
		return err
	}
	var rem licadmin.Reminder
	if err := json.Unmarshal(r.body, &rem); err != nil {
		return fmt.Errorf("decode the reminder: %w", err)
	}
	limit := time.Duration(n/20+60) * time.Second // 20 users/s at least
	lastLog := time.Now()
	for rem.Status == licadmin.ReminderRunning {
		if time.Since(start) > limit {
			return fmt.Errorf("reminder %s still running after %s: %d queued", rem.ID, limit, rem.Queued)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		r, err := b.stack.expect(ctx, 200, "GET", "/v1/activation-emails/"+rem.ID, acct.token, nil)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(r.body, &rem); err != nil {
			return fmt.Errorf("decode the reminder: %w", err)
		}
		if time.Since(lastLog) >= 5*time.Second || rem.Status != licadmin.ReminderRunning {
			b.logf("reminders: %s, %d queued, %d skipped, %d invocation(s) so far", rem.Status, rem.Queued, rem.Skipped, invocations.Load())
			lastLog = time.Now()
		}
	}
	elapsed := time.Since(start)
	counts := b.stack.counter.reset()
	if rem.Status != licadmin.ReminderDone || rem.Queued != int64(n) || rem.Skipped != 0 {
		return fmt.Errorf("reminder %s ended %s with %d queued and %d skipped, want done with %d queued", rem.ID, rem.Status, rem.Queued, rem.Skipped, n)
	}
	reached, err := b.stack.remindedUsers(ctx, acct, rem.ID, n)
	if err != nil {
		return err
	}
	total := 0
	for _, c := range counts.calls {
		total += c
	}
	b.figs.record(0, "reminders.users", float64(n))
	b.figs.record(0, "reminders.per_s", float64(n)/elapsed.Seconds())
	b.figs.record(0, "reminders.invocations", float64(invocations.Load()))
	b.figs.record(0, "reminders.reached", float64(reached))
	b.figs.record(0, "reminders.requests", float64(total)/float64(n))
	b.logf("reminders: %d pending users in %s: %.0f/s, %d invocation(s), %d reached, %.3f DynamoDB requests per user (%s); load average %s before, %s after",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), invocations.Load(), reached, float64(total)/float64(n),
		counts.describe(), load, loadAverage())
	return nil
}

// localQueue sends to one queue of a local SQS: the reminder service's
// Queue, as the SQS client sends to the queue's URL under `run`.
type localQueue struct {
	sqs  *localsqs.Server
	name string
}

func (q localQueue) Send(_ context.Context, body []byte) error {
	_, err := q.sqs.Send(q.name, string(body), nil, 0)
	return err
}

// startReminderQueue serves the template's reminder queue on a local SQS
// (infra/localsqs, as `run` does) delivering to the App's reminder
// handler, and counts the invocations.
func (s *benchStack) startReminderQueue(ctx context.Context) (localQueue, *atomic.Int64, func(), error) {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return localQueue{}, nil, nil, err
	}
	all, err := tpl.QueueSources()
	if err != nil {
		return localQueue{}, nil, nil, err
	}
	var sources []template.QueueSource
	for _, src := range all {
		if src.Function == reminderFunction {
			sources = append(sources, src)
		}
	}
	invocations := &atomic.Int64{}
	handle := s.app.Reminders.HandleSQS
	queues, err := stack.LocalQueueSet(tpl, sources, map[string]localsqs.Handler{
		reminderFunction: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			invocations.Add(1)
			return handle(ctx, ev)
		},
	})
	if err != nil {
		return localQueue{}, nil, nil, err
	}
	srv := localsqs.New(stack.LocalRegion, stack.LocalAccountID, slog.New(slog.NewJSONHandler(io.Discard, nil)), queues...)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Run(ctx)
	}()
	return localQueue{sqs: srv, name: reminderQueue}, invocations, func() { cancel(); <-done }, nil
}

// remindedUsers counts the pending users of acct (n, the seeded users and
// its first admin) that reminder id reached: exactly one activation email
// in the outbox (read from its pending part, the sweeper's index: no
// email is delivered here) and remindedBy id on the user item. It fails
// when a user got two.
func (s *benchStack) remindedUsers(ctx context.Context, acct *benchAccount, id string, n int) (int, error) {
	emails := map[string]int{}
	err := s.queryItems(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(store.GSI1),
		KeyConditionExpression:    aws.String("#pk = :due"),
		FilterExpression:          aws.String("#a = :a AND #k = :k"),
		ProjectionExpression:      aws.String("#u"),
		ExpressionAttributeNames:  map[string]string{"#pk": "gsi1pk", "#a": "accountId", "#k": "kind", "#u": "userId"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":due": &types.AttributeValueMemberS{Value: "OUTBOX#DUE"}, ":a": &types.AttributeValueMemberS{Value: acct.id}, ":k": &types.AttributeValueMemberS{Value: string(licadmin.EmailActivation)}},
	}, func(it map[string]types.AttributeValue) error {
		if u, ok := it["userId"].(*types.AttributeValueMemberS); ok {
			emails[u.Value]++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the outbox: %w", err)
	}
	reached, users := 0, 0
	err = s.queryItems(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(store.GSI1),
		KeyConditionExpression:    aws.String("#pk = :users"),
		FilterExpression:          aws.String("#s = :pending"),
		ProjectionExpression:      aws.String("#id, #by"),
		ExpressionAttributeNames:  map[string]string{"#pk": "gsi1pk", "#s": "status", "#id": "id", "#by": "remindedBy"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":users": &types.AttributeValueMemberS{Value: "ACCT#" + acct.id + "#USERS"}, ":pending": &types.AttributeValueMemberS{Value: string(licadmin.StatusPending)}},
	}, func(it map[string]types.AttributeValue) error {
		users++
		u, _ := it["id"].(*types.AttributeValueMemberS)
		by, _ := it["remindedBy"].(*types.AttributeValueMemberS)
		if u == nil {
			return fmt.Errorf("a user item of %s without id", acct.id)
		}
		switch c := emails[u.Value]; {
		case c > 1:
			return fmt.Errorf("user %s got %d activation emails, want one", u.Value, c)
		case c == 1 && by != nil && by.Value == id:
			reached++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the users: %w", err)
	}
	if users != n {
		return 0, fmt.Errorf("the account has %d pending users, want %d", users, n)
	}
	return reached, nil
}

// queryItems runs in on the benchmark's table, every page, and hands each
// item to fn.
func (s *benchStack) queryItems(ctx context.Context, in *dynamodb.QueryInput, fn func(map[string]types.AttributeValue) error) error {
	in.TableName = aws.String(s.table)
	pages := dynamodb.NewQueryPaginator(s.raw, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadAverage is the machine's 1, 5 and 15-minute load averages, or "?"
// where there is no /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
