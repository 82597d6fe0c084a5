package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/streamlocal"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
	usageevents "licenseadmin/shared/usage"
)

// Usage ingestion: a realistic stream of usage events (many per user,
// some users much busier than others, a fifth naming their user by
// email, SQS batches of 10, redelivered messages and batches mixed in)
// through the ingest function's handler, with the recording function fed
// by the table's stream as its event source mapping feeds it in AWS (its
// filter, batches of up to 1,000 records every 2 seconds), against a
// BatchWriteItem floor of the same log entries measured in the same run.
// Each run uses a table of its own, so that its stream holds only the
// stream's records.

// ingestBatchSize is the SQS batch the benchmark delivers; ingestWorkers
// how many batches are handled at once (concurrent Lambda instances), and
// the floor's writers.
const (
	ingestBatchSize = 10
	ingestWorkers   = 4
	// countWindow is the recording mapping's MaximumBatchingWindowInSeconds
	// (template.yaml; its BatchSize and filter are read from there).
	countWindow = 2 * time.Second
)

// ingestStream is the benchmark's stream of usage events.
type ingestStream struct {
	batches  [][]string // SQS message bodies
	sent     time.Time  // when the queue received them
	events   []*licadmin.UsageEvent
	users    []*licadmin.User
	messages int
	// want is each user's counters per month once every event counted.
	want map[[2]string]licadmin.Counters
}

// newIngestStream builds n events of users, delivered in batches of 10 with
// about 3 % of the messages redelivered in a later batch and 2 % of the
// batches delivered twice.
func newIngestStream(users []*licadmin.User, acct *benchAccount, n int, seed uint64) *ingestStream {
	rng := rand.New(rand.NewPCG(seed, 18))
	now := time.Now().UTC()
	s := &ingestStream{users: users, want: map[[2]string]licadmin.Counters{}, sent: now}
	var bodies []string
	redeliver := map[int][]string{} // position -> bodies to insert there
	types := []licadmin.EventType{licadmin.EventSent, licadmin.EventSent, licadmin.EventSent, licadmin.EventSent,
		licadmin.EventOpened, licadmin.EventOpened, licadmin.EventOpened, licadmin.EventDownloaded, licadmin.EventDownloaded, licadmin.EventSigned}
	for i := range n {
		// Busy users: the square of a uniform draw favours the first ones.
		r := rng.Float64()
		u := users[int(r*r*float64(len(users)))]
		t := types[rng.IntN(len(types))]
		ev := &licadmin.UsageEvent{
			ID: fmt.Sprintf("ev-%d-%d", seed, i), AccountID: acct.id, UserID: u.ID, Type: t,
			At:         now.Add(-time.Duration(rng.IntN(3600)) * time.Second).Truncate(time.Millisecond),
			MessageRef: fmt.Sprintf("<%d.%d@mail.example.org>", seed, i),
			IP:         "192.0.2.10",
		}
		for range 1 + rng.IntN(3) {
			ev.Recipients = append(ev.Recipients, fmt.Sprintf("client-%d@example.org", rng.IntN(1000)))
		}
		if t == licadmin.EventSent {
			ev.Bytes = int64(2_000 + rng.IntN(200_000))
		}
		msg := usageevents.Message{EventID: ev.ID, AccountID: ev.AccountID, UserID: u.ID, Type: string(t),
			At: ev.At.Format(time.RFC3339Nano), MessageRef: ev.MessageRef, Recipients: ev.Recipients, Bytes: ev.Bytes, IP: ev.IP}
		if rng.IntN(5) == 0 {
			msg.UserID, msg.Email = "", u.Email
		}
		body, _ := json.Marshal(msg)
		s.events = append(s.events, ev)
		k := [2]string{u.ID, ev.At.Format(licadmin.MonthLayout)}
		c := s.want[k]
		c.Count(t, ev.Bytes)
		s.want[k] = c
		bodies = append(bodies, string(body))
		bodies = append(bodies, redeliver[i]...)
		if rng.IntN(100) < 3 {
			at := i + 20 + rng.IntN(200)
			redeliver[at] = append(redeliver[at], string(body))
		}
	}
	for i := 0; i < len(bodies); i += ingestBatchSize {
		batch := bodies[i:min(i+ingestBatchSize, len(bodies))]
		s.batches = append(s.batches, batch)
		if rng.IntN(100) < 2 {
			s.batches = append(s.batches, batch)
		}
	}
	for _, b := range s.batches {
		s.messages += len(b)
	}
	return s
}

// ingestFigures defines and measures the ingestion figures of this run.
func (b *bench) ingestFigures(ctx context.Context) error {
	recording, err := recordingSource()
	if err != nil {
		return err
	}
	users, events := 50, 6_000
	if b.cfg.quick {
		users, events = 20, 1_000
	}
	b.figs.define(figureDef{ID: "floor.ingest.batch", Title: "BatchWriteItem of the stream's log entries", Unit: "entries/s",
		Meaning: fmt.Sprintf("floor: the log entries of the stream's %d events, as the store's RecordUsage builds them (captured), put with BatchWriteItem, 25 per call, %d writers, on a table of their own, half before and half after the ingestion: entries per second", events, ingestWorkers)})
	b.figs.define(figureDef{ID: "ingest.events", Title: "usage events ingested", Unit: "events/s",
		Meaning: fmt.Sprintf("%d usage events of %d users (some much busier than others; a fifth name their user by email) delivered to the ingest function's handler in SQS batches of %d, %d batches at once, about 3 %% of the messages redelivered in a later batch and 2 %% of the batches twice, while the recording function reads the table's stream as its mapping does (filter, up to %d records every %s): distinct events per second from the first batch to the last one handled", events, users, ingestBatchSize, ingestWorkers, recording.BatchSize, countWindow),
		Floor:   "floor.ingest.batch", Target: "ratio >= 0.5", Check: ratioAtLeast(0.5)})
	b.figs.define(figureDef{ID: "ingest.wcu", Title: "write units per usage event", Unit: "WCU/event",
		Meaning: "write capacity units of every request the ingest and recording functions sent for the stream (bench_capacity.go's rules), per distinct event: the log entry (the ingest function; 1 unit while under 1 KB, rewritten by a redelivery) and the counters (the recording function; 1 unit per user, log generation and month of a stream batch)",
		Target:  "<= 3", Check: atMost(3)})
	b.figs.define(figureDef{ID: "ingest.rcu", Title: "read units per usage event", Unit: "RCU/event",
		Meaning: "read capacity units of the same requests per distinct event: eventually consistent reads of the users a batch names that the ingest function does not remember from the last second (half a unit per user or email claim)",
		Target:  "<= 0.5", Check: atMost(0.5)})
	b.figs.define(figureDef{ID: "ingest.requests", Title: "DynamoDB requests per SQS batch", Unit: "req/batch",
		Meaning: "requests the ingest function sent per SQS batch (BatchGetItem of the users it does not remember, BatchWriteItem of the log entries; every attempt)"})
	b.figs.define(figureDef{ID: "ingest.lag", Title: "counters exact after the last batch", Unit: "s",
		Meaning: "seconds from the last batch handled until every user's monthly counters equal the stream's distinct events (read from the table every 250 ms): how far statistics trail ingestion"})
	b.figs.define(figureDef{ID: "ingest.events.e2e", Title: "usage events recorded, end to end", Unit: "events/s",
		Meaning: "the same events per second from the first batch until the counters were exact (ingest.lag): what a user sees in statistics (logs show an event once the ingest function wrote it)",
		Floor:   "floor.ingest.batch"})
	b.figs.define(figureDef{ID: "ingest.exact", Title: "counters exact", Unit: "bool",
		Meaning: "1 when every user's monthly counters equal the distinct events of the stream (redeliveries counted once), 0 otherwise",
		Target:  "= 1", Check: exactly(1)})

	acct, err := b.stack.newAccount(ctx, "ingest", nil)
	if err != nil {
		return err
	}
	table := fmt.Sprintf("%s-ingest-%d", b.stack.table, b.run)
	if err := dynamolocal.CreateTable(ctx, b.stack.raw, table); err != nil {
		return err
	}
	us, items, err := b.stack.userItems(ctx, acct, fmt.Sprintf("ingest-r%d", b.run), users, "USER#", "EMAIL#")
	if err != nil {
		return err
	}
	if err := batchWrite(ctx, b.stack.raw, table, items, 2); err != nil {
		return err
	}
	stream := newIngestStream(us, acct, events, uint64(b.run+1))
	b.logf("ingest: %d events of %d users (%d messages in %d batches), on table %s", len(stream.events), users, stream.messages, len(stream.batches), table)

	// The floor's entries: the log items of the stream's events as
	// RecordUsage puts them, in a generation of their own so that they
	// are new items.
	db, err := b.stack.captureAll(func(st *store.Store) error {
		var writes []store.UsageWrite
		for _, ev := range stream.events {
			for _, u := range us {
				if u.ID == ev.UserID {
					floorUser := *u
					floorUser.LogGeneration = 1_000_000
					writes = append(writes, store.UsageWrite{Event: ev, User: &floorUser, Sent: stream.sent})
				}
			}
		}
		return errors.Join(st.RecordUsage(ctx, writes, time.Now().UTC())...)
	})
	if err != nil {
		return err
	}
	entries := floorEntries(batchPuts(db.batches, "LOG#"))
	if len(entries) != len(stream.events) {
		return fmt.Errorf("bench: RecordUsage put %d log entries for %d events: update the benchmark to its shape", len(entries), len(stream.events))
	}

	// The ingest and recording functions as their mains build them, over
	// this run's table,
	// each on a client that counts its requests.
	newApp := func(counter *requestCounter) *app.App {
		cfg := b.stack.app.Config
		cfg.TableName = table
		a := app.NewWithClient(cfg, dynamodb.New(b.stack.raw.Options(), counter.option()))
		a.SetLogger(b.stack.app.API.Logger)
		a.UsageRecorder.Logger = b.stack.app.API.Logger
		if a.Metrics != nil {
			a.Metrics.W = io.Discard
		}
		return a
	}
	ingestCounter, recordCounter := newRequestCounter(), newRequestCounter()
	a, rec := newApp(ingestCounter), newApp(recordCounter)

	half := len(entries) / 2
	floorTime := time.Duration(0)
	writeFloor := func(part []map[string]types.AttributeValue) error {
		t0 := time.Now()
		err := batchWrite(ctx, b.stack.raw, table, part, ingestWorkers)
		floorTime += time.Since(t0)
		return err
	}
	if err := writeFloor(entries[:half]); err != nil {
		return err
	}

	counting, err := startCounting(ctx, b.stack.raw, table, recording, rec.UsageRecorder.HandleStream)
	if err != nil {
		return err
	}
	defer counting.stop()
	t0 := time.Now()
	// The ingestion is bounded by the import's limit, not a phase's: on a
	// busy machine DynamoDB Local can be ten times slower than usual, and
	// a stream cut short could not be checked for exactness.
	res := drive(ctx, ingestWorkers, len(stream.batches), b.cfg.importLimit, func(ctx context.Context, _, i int) error {
		resp, err := a.Usage.HandleSQS(ctx, sqsBatch(i, stream.batches[i], stream.sent))
		if err == nil && len(resp.BatchItemFailures) > 0 {
			err = fmt.Errorf("%d messages of batch %d failed", len(resp.BatchItemFailures), i)
		}
		return err
	})
	ingested := time.Since(t0)
	if res.failed > 0 {
		return fmt.Errorf("ingest: %d batches failed, first: %w", res.failed, res.firstErr)
	}
	if len(res.lat) < len(stream.batches) {
		return fmt.Errorf("ingest: %d of %d batches handled within %s", len(res.lat), len(stream.batches), b.cfg.importLimit)
	}
	exact, lag, err := waitCounters(ctx, b.stack.raw, table, stream.want, b.cfg.importLimit)
	if err != nil {
		return err
	}
	counterTime, counterCalls := counting.stop()
	ingestCounts := ingestCounter.reset()
	counted := ingestCounts.add(recordCounter.reset())
	if err := writeFloor(entries[half:]); err != nil {
		return err
	}

	wcu, rcu, err := b.stack.sizes.units(ctx, b.stack.raw, table, counted.units)
	if err != nil {
		return err
	}
	n := float64(len(stream.events))
	floor := float64(len(entries)) / floorTime.Seconds()
	rate := n / ingested.Seconds()
	b.figs.record(b.run, "floor.ingest.batch", floor)
	b.figs.record(b.run, "ingest.events", rate)
	b.figs.record(b.run, "ingest.wcu", wcu/n)
	b.figs.record(b.run, "ingest.rcu", rcu/n)
	b.figs.record(b.run, "ingest.requests", float64(ingestCounts.sum(readOps)+ingestCounts.sum(writeOps))/float64(len(stream.batches)))
	b.figs.record(b.run, "ingest.lag", lag.Seconds())
	b.figs.record(b.run, "ingest.events.e2e", n/(ingested+lag).Seconds())
	exactValue := 0.0
	if exact {
		exactValue = 1
	}
	b.figs.record(b.run, "ingest.exact", exactValue)
	var handled time.Duration
	for _, d := range res.lat {
		handled += d
	}
	cost, err := usageCost{wcu: wcu / n, rcu: rcu / n, ingestSeconds: handled.Seconds() / n, countSeconds: counterTime.Seconds() / n,
		invocations: (float64(len(stream.batches)) + float64(counterCalls)) / n}.million()
	if err != nil {
		return err
	}
	b.figs.record(b.run, "cost.usage.million", cost)
	b.logf("ingest: %d events (%d messages in %d batches) in %s: %.0f events/s vs BatchWriteItem floor %.0f entries/s (%.2f); %.2f WCU %.2f RCU per event; counters exact %v %.1f s after; DynamoDB: %s; %d counting invocations; $%.2f per million events",
		len(stream.events), stream.messages, len(stream.batches), ingested.Round(time.Millisecond), rate, floor, rate/floor, wcu/n, rcu/n, exact, lag.Seconds(), counted.describe(), counterCalls, cost)
	return nil
}

// counting reads a table's stream as the recording function's event source
// mapping does: every countWindow, the records since the last read, those
// its filter admits (template.yaml's; the user changes it also admits,
// for the search index, are not the ingestion's), in batches of up to
// countBatch.
type counting struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	took   time.Duration
	calls  int
}

func startCounting(ctx context.Context, db *dynamodb.Client, table string, src template.StreamSource, h streamlocal.Handler) (*counting, error) {
	filter, err := streamlocal.ParseFilter(src.Filters)
	if err != nil {
		return nil, err
	}
	c := &counting{done: make(chan struct{})}
	p := &streamlocal.Poller{DynamoDB: db, Streams: streamlocal.NewStreamsClient(db), Table: table, BatchSize: int32(src.BatchSize),
		Handler: func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			var admitted []events.DynamoDBEventRecord
			for _, r := range ev.Records {
				if filter.Match(r) && !strings.HasPrefix(r.Change.Keys["pk"].String(), "USER#") {
					admitted = append(admitted, r)
				}
			}
			if len(admitted) == 0 {
				return events.DynamoDBEventResponse{}, nil
			}
			t0 := time.Now()
			resp, err := h(ctx, events.DynamoDBEvent{Records: admitted})
			c.mu.Lock()
			c.took += time.Since(t0)
			c.calls++
			c.mu.Unlock()
			return resp, err
		}}
	// Read the stream up to now: its first records (the users) are not
	// the stream's.
	if _, err := p.Next(ctx); err != nil {
		return nil, err
	}
	ctx, c.cancel = context.WithCancel(ctx)
	go func() {
		defer close(c.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(countWindow):
			}
			if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
				continue
			}
		}
	}()
	return c, nil
}

// stop ends the reading and returns the handler's time and invocations.
func (c *counting) stop() (time.Duration, int) {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.took, c.calls
}

// waitCounters reads the monthly counters of want's users every 250 ms
// until they equal want or limit passes, and says whether they did and
// how long it took.
func waitCounters(ctx context.Context, db *dynamodb.Client, table string, want map[[2]string]licadmin.Counters, limit time.Duration) (bool, time.Duration, error) {
	t0 := time.Now()
	for {
		got := map[[2]string]licadmin.Counters{}
		for k := range want {
			out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, ConsistentRead: aws.Bool(true), Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "USER#" + k[0]}, "sk": &types.AttributeValueMemberS{Value: "STATS#" + k[1]}}})
			if err != nil {
				return false, 0, fmt.Errorf("read counters: %w", err)
			}
			got[k] = countersOf(out.Item)
		}
		equal := true
		for k, w := range want {
			equal = equal && got[k] == w
		}
		if equal {
			return true, time.Since(t0), nil
		}
		if time.Since(t0) > limit {
			return false, time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			return false, 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func countersOf(it map[string]types.AttributeValue) licadmin.Counters {
	n := func(name string) int64 {
		v, _ := it[name].(*types.AttributeValueMemberN)
		if v == nil {
			return 0
		}
		var x int64
		fmt.Sscan(v.Value, &x)
		return x
	}
	return licadmin.Counters{Sent: n("sent"), BytesSent: n("bytesSent"), Opens: n("opens"), Downloads: n("downloads"), Signed: n("signed")}
}

// sqsBatch is the event the usage queue's mapping delivers for a batch of
// message bodies (the fields the ingest function reads).
func sqsBatch(n int, bodies []string, sent time.Time) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(bodies))}
	for i, body := range bodies {
		ev.Records[i] = events.SQSMessage{MessageId: fmt.Sprintf("b%d-m%d", n, i), Body: body, EventSource: "aws:sqs",
			Attributes: map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10)}}
	}
	return ev
}

// recordingSource is the recording function's stream event source in
// template.yaml.
func recordingSource() (template.StreamSource, error) {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return template.StreamSource{}, err
	}
	sources, err := tpl.StreamSources()
	if err != nil {
		return template.StreamSource{}, err
	}
	for _, src := range sources {
		if src.Function == "RecordUsageFunction" {
			return src, nil
		}
	}
	return template.StreamSource{}, errors.New("template.yaml: RecordUsageFunction reads no stream")
}
