package streamlocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/streamlocal"
)

func TestMain(m *testing.M) { os.Exit(dynamolocal.RunTests(m)) }

// mapping is a poller of a fresh table (created from the template, with
// its stream) whose handler records each batch's partition keys and fails
// as fail says, and whose on-failure destination records what it gets.
type mapping struct {
	*streamlocal.Poller
	db       *dynamodb.Client
	batches  [][]string
	failures []streamlocal.FailureRecord
	deadline []time.Duration
	fail     func(pks []string) error
}

func newMapping(t *testing.T, configure func(*streamlocal.Poller)) *mapping {
	t.Helper()
	db, table := dynamolocal.NewTable(t)
	m := &mapping{db: db}
	m.Poller = &streamlocal.Poller{
		DynamoDB: db, Streams: streamlocal.NewStreamsClient(db), Table: table, Function: "TestFunction",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Backoff: time.Millisecond,
		Handler: func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			var pks []string
			for _, r := range ev.Records {
				pks = append(pks, r.Change.Keys["pk"].String())
			}
			m.batches = append(m.batches, pks)
			if dl, ok := ctx.Deadline(); ok {
				m.deadline = append(m.deadline, time.Until(dl))
			}
			if m.fail != nil {
				return events.DynamoDBEventResponse{}, m.fail(pks)
			}
			return events.DynamoDBEventResponse{}, nil
		},
		OnFailure: func(_ context.Context, record []byte) error {
			var f streamlocal.FailureRecord
			if err := json.Unmarshal(record, &f); err != nil {
				return err
			}
			m.failures = append(m.failures, f)
			return nil
		},
	}
	configure(m.Poller)
	return m
}

// put writes one item per partition key, in order.
func (m *mapping) put(t *testing.T, pks ...string) {
	t.Helper()
	for _, pk := range pks {
		_, err := m.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(m.Table), Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: "X"},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (m *mapping) drain(t *testing.T) {
	t.Helper()
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestFilterCriteria ensures only the records a pattern matches reach the
// handler, and that a pattern the local filter does not know is refused.
func TestFilterCriteria(t *testing.T) {
	filter, err := streamlocal.ParseFilter([]string{`{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "A#"}]}}}}`})
	if err != nil {
		t.Fatal(err)
	}
	m := newMapping(t, func(p *streamlocal.Poller) { p.Filter = filter })
	m.put(t, "A#1", "B#1", "A#2")
	m.drain(t)
	if !slices.Equal(slices.Concat(m.batches...), []string{"A#1", "A#2"}) {
		t.Fatalf("handled %v, want A#1 and A#2 only", m.batches)
	}
	for _, p := range []string{`{"a": [{"numeric": [">", 1]}]}`, `{"$or": [{"a": ["x"]}]}`, `{"a": "x"}`} {
		if _, err := streamlocal.ParseFilter([]string{p}); err == nil {
			t.Errorf("pattern %s was accepted", p)
		}
	}
}

// TestBatchSize ensures no invocation gets more than BatchSize records.
func TestBatchSize(t *testing.T) {
	m := newMapping(t, func(p *streamlocal.Poller) { p.BatchSize = 2 })
	m.put(t, "a", "b", "c", "d", "e")
	m.drain(t)
	var sizes []int
	for _, b := range m.batches {
		sizes = append(sizes, len(b))
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Fatalf("batch sizes %v, want 2, 2, 1", sizes)
	}
}

// TestRetriesThenOnFailure ensures a failing batch is invoked once and
// retried MaximumRetryAttempts times, then described to the on-failure
// destination as Lambda describes it, and that the poller moves on.
func TestRetriesThenOnFailure(t *testing.T) {
	m := newMapping(t, func(p *streamlocal.Poller) { p.Retries = 2 })
	m.fail = func(pks []string) error { return errors.New("boom") }
	m.put(t, "a", "b", "c")
	m.drain(t)
	if len(m.batches) != 3 || !slices.Equal(m.batches[2], []string{"a", "b", "c"}) {
		t.Fatalf("invocations %v, want the batch 3 times (1 + 2 retries)", m.batches)
	}
	if len(m.failures) != 1 {
		t.Fatalf("on-failure records %+v, want 1", m.failures)
	}
	f := m.failures[0]
	if f.RequestContext.Condition != "RetryAttemptsExhausted" || f.RequestContext.ApproximateInvokeCount != 3 ||
		f.DDBStreamBatchInfo.BatchSize != 3 || f.DDBStreamBatchInfo.ShardID == "" || f.DDBStreamBatchInfo.StreamARN == "" ||
		f.DDBStreamBatchInfo.StartSequenceNumber == "" || f.DDBStreamBatchInfo.StartSequenceNumber == f.DDBStreamBatchInfo.EndSequenceNumber ||
		f.RequestContext.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:TestFunction" {
		t.Fatalf("on-failure record %+v", f)
	}
	m.fail = nil
	m.put(t, "d")
	m.drain(t)
	if last := m.batches[len(m.batches)-1]; !slices.Equal(last, []string{"d"}) {
		t.Fatalf("after giving up: %v, want the next record handled", m.batches)
	}
}

// TestBisect ensures a batch whose handler errs is split in halves down to
// the record that fails, which alone is retried and given up, while the
// others are handled; splitting counts as no retry.
func TestBisect(t *testing.T) {
	m := newMapping(t, func(p *streamlocal.Poller) { p.Bisect, p.Retries = true, 1 })
	m.fail = func(pks []string) error {
		if slices.Contains(pks, "poison") {
			return errors.New("poison")
		}
		return nil
	}
	m.put(t, "a", "poison", "c", "d")
	m.drain(t)
	want := [][]string{{"a", "poison", "c", "d"}, {"a", "poison"}, {"a"}, {"poison"}, {"poison"}, {"c", "d"}}
	if !slices.EqualFunc(m.batches, want, slices.Equal) {
		t.Fatalf("invocations %v, want %v", m.batches, want)
	}
	if len(m.failures) != 1 || m.failures[0].DDBStreamBatchInfo.BatchSize != 1 || m.failures[0].RequestContext.ApproximateInvokeCount != 2 {
		t.Fatalf("on-failure records %+v, want the poison record alone after 2 invocations", m.failures)
	}
}

// TestTimeout ensures each invocation's context carries the function's
// timeout as its deadline.
func TestTimeout(t *testing.T) {
	m := newMapping(t, func(p *streamlocal.Poller) { p.Timeout = time.Minute })
	m.put(t, "a")
	m.drain(t)
	if len(m.deadline) != 1 || m.deadline[0] <= 0 || m.deadline[0] > time.Minute {
		t.Fatalf("deadlines %v, want one within the minute of Timeout", m.deadline)
	}
}
