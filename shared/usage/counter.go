package usage

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
)

// CounterStore is what the monthly counters need from storage.
type CounterStore interface {
	AddUsageCounts(ctx context.Context, run store.UsageCountRun, now time.Time) error
}

// Counter keeps the users' monthly usage counters: it is the handler of
// the count-usage function, which the table's stream invokes with the
// INSERTs of usage event claims (its event source mapping's filter). A
// claim is new only the first time its event is written, so counting
// INSERTs counts each event once however often the queue delivered it.
//
// The records of a batch, all of one shard and in order, are added up per
// user and month in runs of consecutive records (at most
// store.MaxUsageCountsPerRun users' months each), and each run is added in
// one transaction with a marker named by its first record's event id and
// holding its last sequence number. A redelivered batch, whole or from the
// run that failed, finds the markers of the runs already counted, skips
// their records by sequence number, and counts the rest: the counters are
// exact, a few seconds (the mapping's batching window) after the events.
type Counter struct {
	Store  CounterStore
	Now    licadmin.Clock
	Logger *slog.Logger
	// RunSize bounds the users' months of one run
	// (store.MaxUsageCountsPerRun when 0 or above it).
	RunSize int
}

// HandleStream is the count-usage function's handler. When a run cannot be
// added it reports the run's first record as the batch's failure
// (ReportBatchItemFailures), so that Lambda delivers the batch again from
// there.
func (c *Counter) HandleStream(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	recs := ev.Records
	for i := 0; i < len(recs); {
		run, next := c.nextRun(ctx, recs, i)
		if len(run.Counts) == 0 {
			i = next
			continue
		}
		err := c.Store.AddUsageCounts(ctx, run, c.Now.Read())
		if done, ok := store.IsRunCounted(err); ok {
			// Counted by an earlier delivery: skip what it covered.
			j := i + 1
			for j < len(recs) && !store.SequenceAfter(recs[j].Change.SequenceNumber, done.LastSequence) {
				j++
			}
			i = j
			continue
		}
		if err != nil {
			c.logger().ErrorContext(ctx, "usage counts not added; the stream delivers these records again",
				"firstEventId", run.FirstEventID, "sequenceNumber", recs[i].Change.SequenceNumber, "err", err.Error())
			resp.BatchItemFailures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: recs[i].Change.SequenceNumber}}
			return resp, nil
		}
		i = next
	}
	return resp, nil
}

// nextRun adds up the records from recs[i] on, until one would make the
// run name one user's month too many, and returns the run and where the
// next one starts.
func (c *Counter) nextRun(ctx context.Context, recs []events.DynamoDBEventRecord, i int) (store.UsageCountRun, int) {
	run := store.UsageCountRun{FirstEventID: recs[i].EventID}
	at := map[[2]string]int{}
	j := i
	for ; j < len(recs); j++ {
		ce := c.counted(ctx, &recs[j])
		if ce == nil {
			continue
		}
		k := [2]string{ce.UserID, ce.At.UTC().Format(licadmin.MonthLayout)}
		n, ok := at[k]
		if !ok {
			if len(run.Counts) == c.runSize() {
				break
			}
			n = len(run.Counts)
			at[k] = n
			run.Counts = append(run.Counts, store.UsageCount{UserID: ce.UserID, AccountID: ce.AccountID, Month: k[1]})
		}
		run.Counts[n].Count(ce.Type, ce.Bytes)
	}
	run.LastSequence = recs[j-1].Change.SequenceNumber
	return run, j
}

// counted decodes a claim's INSERT; nil for any other record, which the
// mapping's filter should not have let through.
func (c *Counter) counted(ctx context.Context, r *events.DynamoDBEventRecord) *store.CountedEvent {
	if r.EventName != stream.Insert {
		return nil
	}
	img, err := stream.Item(r.Change.NewImage)
	if err != nil {
		c.logger().WarnContext(ctx, "stream record not counted: its image does not decode", "eventId", r.EventID, "err", err.Error())
		return nil
	}
	return store.CountedEventFromImage(img)
}

func (c *Counter) runSize() int {
	if c.RunSize <= 0 || c.RunSize > store.MaxUsageCountsPerRun {
		return store.MaxUsageCountsPerRun
	}
	return c.RunSize
}

func (c *Counter) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
