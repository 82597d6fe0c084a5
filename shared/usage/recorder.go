package usage

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
)

// RecorderStore is what the stream's side of ingestion needs from storage,
// and the user search index its stream mapping also keeps.
type RecorderStore interface {
	WriteLogEntries(ctx context.Context, entries []store.Item) error
	AddUsageCount(ctx context.Context, c store.UsageCount, after string) error
	ApplySearchIndex(ctx context.Context, c store.SearchChange, now time.Time) error
}

// Recorder keeps the users' monthly usage counters from the INSERTs of
// their log entries, and puts the log entries of claims: it is the handler
// of the record-usage function, which the table's stream invokes with
// those INSERTs (its event source mapping's filter). An entry or a claim
// is new only the first time its event is written, so recording INSERTs
// records each event once however often the queue delivered it.
//
// The entries of a batch's claims are put with BatchWriteItem (a
// redelivered record rewrites the same item); their own INSERTs come back
// to count. The entries of a batch are added up per user, log generation
// and month, and each sum is added with one UpdateItem that records the
// sequence number of the last entry it counted and requires the counters
// to hold none of that generation at or after the sum's first one. A
// generation's entries live in one partition, whose records the stream
// delivers in order, so a redelivered batch (whole, or from the failed
// record on) finds what it counted before and adds only the records after
// it: the counters are exact, a few seconds (the mapping's batching
// window) after the events.
//
// The same mapping delivers every change of a user item, from which the
// Recorder keeps the user search index (searchIndex): DynamoDB Streams
// allows two readers per shard, and this function's binary is the small
// one of the two.
type Recorder struct {
	Store  RecorderStore
	Logger *slog.Logger
	// Now is the clock of the search index markers' expiry (time.Now
	// when nil).
	Now func() time.Time
}

// userMonth is a sum of one user's entries of one log generation and
// month in a batch, with the records it adds up.
type userMonth struct {
	sum     store.UsageCount
	records []*store.CountedEvent
	seqs    []string
}

// HandleStream is the record-usage function's handler. When a user's
// search index cannot be updated it reports that user's first record of
// the batch as failed (searchIndex). When the claims' entries cannot be
// written it reports the batch's first record as failed; when a sum
// cannot be added, the earliest record of the sums that failed
// (ReportBatchItemFailures), so that Lambda delivers the batch again from
// there; the entries are rewritten and the sums already added skip those
// records.
func (c *Recorder) HandleStream(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	var order []*userMonth
	sums := map[userMonthKey]*userMonth{}
	first := map[*userMonth]int{} // index of its first record
	var entries []store.Item
	failedAt := c.searchIndex(ctx, ev.Records)
	for i := range ev.Records {
		r := &ev.Records[i]
		img := c.inserted(ctx, r)
		if entry := store.ClaimedEntry(img); entry != nil {
			entries = append(entries, entry)
			continue
		}
		ce := store.CountedEventFromImage(img)
		if ce == nil {
			continue
		}
		k := userMonthKey{ce.UserID, ce.Generation, ce.At.UTC().Format(licadmin.MonthLayout)}
		um := sums[k]
		if um == nil {
			um = &userMonth{sum: store.UsageCount{UserID: ce.UserID, AccountID: ce.AccountID, Generation: ce.Generation, Month: k.month}}
			sums[k] = um
			first[um] = i
			order = append(order, um)
		}
		um.records = append(um.records, ce)
		um.seqs = append(um.seqs, r.Change.SequenceNumber)
	}
	if len(entries) > 0 {
		if err := c.Store.WriteLogEntries(ctx, entries); err != nil {
			c.logger().ErrorContext(ctx, "log entries not written; the stream delivers these records again", "entries", len(entries), "err", err.Error())
			resp.BatchItemFailures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: ev.Records[0].Change.SequenceNumber}}
			return resp, nil
		}
	}
	for _, um := range order {
		if err := c.add(ctx, um); err != nil {
			c.logger().ErrorContext(ctx, "usage not counted; the stream delivers these records again",
				"userId", um.sum.UserID, "logGeneration", um.sum.Generation, "month", um.sum.Month, "firstSequence", um.seqs[0], "err", err.Error())
			if failedAt < 0 || first[um] < failedAt {
				failedAt = first[um]
			}
		}
	}
	if failedAt >= 0 {
		resp.BatchItemFailures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: ev.Records[failedAt].Change.SequenceNumber}}
	}
	return resp, nil
}

// userMonthKey names a sum: a user, a log generation and a month.
type userMonthKey struct {
	user  string
	gen   int64
	month string
}

// add adds um's records after after (all when after is "") to its user's
// counters; when some were counted already it adds the rest.
func (c *Recorder) add(ctx context.Context, um *userMonth) error {
	after := ""
	for attempt := 0; ; attempt++ {
		sum := um.sum
		for i, ce := range um.records {
			if after != "" && !store.SequenceAfter(um.seqs[i], after) {
				continue
			}
			if sum.FirstSequence == "" {
				sum.FirstSequence = um.seqs[i]
			}
			sum.LastSequence = um.seqs[i]
			sum.Count(ce.Type, ce.Bytes)
		}
		if sum.FirstSequence == "" {
			return nil // every record was counted by an earlier delivery
		}
		err := c.Store.AddUsageCount(ctx, sum, after)
		done, ok := store.IsCounted(err)
		if !ok || attempt > 0 {
			return err
		}
		after = done.Through
	}
}

// inserted decodes the new image of an INSERT; nil for any other record,
// which the mapping's filter should not have let through.
func (c *Recorder) inserted(ctx context.Context, r *events.DynamoDBEventRecord) store.Item {
	if r.EventName != stream.Insert {
		return nil
	}
	img, err := stream.Item(r.Change.NewImage)
	if err != nil {
		c.logger().WarnContext(ctx, "stream record not recorded: its image does not decode", "eventId", r.EventID, "err", err.Error())
		return nil
	}
	return img
}

func (c *Recorder) logger() *slog.Logger { return cmp.Or(c.Logger, slog.Default()) }
