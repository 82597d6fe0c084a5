package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/infra/streamlocal"
)

// SQSEvent returns the event Lambda sends for a batch of messages with
// these bodies: message ids m1, m2, … and a first receive. A body sent
// before is a redelivery of the same message: it keeps the SentTimestamp
// of its first send, as the queue keeps it.
func SQSEvent(bodies ...string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(bodies))}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for i, b := range bodies {
		sent, _ := sentTimestamps.LoadOrStore(b, now)
		ev.Records[i] = events.SQSMessage{
			MessageId:     fmt.Sprintf("m%d", i+1),
			ReceiptHandle: fmt.Sprintf("rh%d", i+1),
			Body:          b,
			Attributes: map[string]string{
				"ApproximateReceiveCount": "1", "SentTimestamp": sent.(string), "ApproximateFirstReceiveTimestamp": now,
			},
			EventSource:    "aws:sqs",
			EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:UsageQueue",
			AWSRegion:      "us-east-1",
		}
	}
	return ev
}

// sentTimestamps is when each message body was first sent (SQSEvent).
var sentTimestamps sync.Map

// Ingest hands usage messages to the ingest function's handler as one SQS
// batch, as the usage queue would, then delivers the table's stream to the
// counting function (CountUsage below) as its event source mapping would, and
// returns the ingest handler's response. A message is a string (sent as
// is) or a value encoded as JSON.
func (e *Env) Ingest(tb testing.TB, msgs ...any) events.SQSEventResponse {
	tb.Helper()
	bodies := make([]string, len(msgs))
	for i, m := range msgs {
		if s, ok := m.(string); ok {
			bodies[i] = s
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		bodies[i] = string(b)
	}
	e.App.Usage.Logger = quiet
	resp, err := e.App.Usage.HandleSQS(AsFunction(context.Background(), "IngestUsageFunction"), SQSEvent(bodies...))
	if err != nil {
		tb.Fatalf("ingest handler returned an error (the whole batch would be retried): %v", err)
	}
	e.DeliverUsageStream(tb)
	return resp
}

// CountUsage delivers the table's stream records written since the last
// call to the counting function's handler (App.UsageRecorder), as its own
// event source mapping does, until the stream is quiet: the monthly
// counters then include every event ingested so far.
func (e *Env) DeliverUsageStream(tb testing.TB) {
	tb.Helper()
	if e.counts == nil {
		e.App.UsageRecorder.Logger = quiet
		e.counts = &streamlocal.Poller{
			DynamoDB: e.DB, Streams: streamlocal.NewStreamsClient(e.DB), Table: e.Table,
			Handler: func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
				return e.App.UsageRecorder.HandleStream(AsFunction(ctx, "RecordUsageFunction"), ev)
			},
			Logger:  quiet,
			Retries: 1, Backoff: 10 * time.Millisecond,
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.counts.Drain(ctx); err != nil {
		tb.Fatalf("deliver the table's stream to the usage counters: %v", err)
	}
}

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// ExportQueue is a test's export (or reminder) queue: it keeps the jobs
// that requests send, for RunExports (or Take).
type ExportQueue struct {
	mu   sync.Mutex
	jobs []string
	// Err, when set, is what Send answers.
	Err error
	iam *iamCheck
}

// Send keeps body as a job, or answers q.Err.
func (q *ExportQueue) Send(ctx context.Context, body []byte) error {
	if q.iam != nil {
		q.iam.sent(ctx, "ExportQueue")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Err != nil {
		return q.Err
	}
	q.jobs = append(q.jobs, string(body))
	return nil
}

// Take returns and forgets the waiting jobs.
func (q *ExportQueue) Take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := q.jobs
	q.jobs = nil
	return jobs
}

// Len returns how many jobs wait.
func (q *ExportQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs)
}

// UseExports gives env's exports the test's S3 bucket and an ExportQueue,
// on which the log purge queues the deletion of export files too, as in
// AWS, and returns the queue.
func (e *Env) UseExports() *ExportQueue {
	q := &ExportQueue{iam: e.iam}
	e.App.Exports.Queue = q
	e.App.Exports.Objects = e.App.Files
	e.App.Purger.Files = e.App.Exports
	e.App.Exports.Logger = quiet
	return q
}

// RunExports hands every waiting job to the export function's handler, one
// message per invocation as its BatchSize 1 does, and returns the messages
// the handler reported failed.
func (e *Env) RunExports(tb testing.TB, q *ExportQueue) []events.SQSBatchItemFailure {
	tb.Helper()
	var failed []events.SQSBatchItemFailure
	for _, j := range q.Take() {
		resp, err := e.App.Exports.HandleSQS(AsFunction(context.Background(), "ExportLogsFunction"), SQSEvent(j))
		if err != nil {
			tb.Fatalf("export handler returned an error: %v", err)
		}
		failed = append(failed, resp.BatchItemFailures...)
	}
	return failed
}
