// Package streamlocal reads the DynamoDB stream of a table on DynamoDB Local
// (DescribeStream, GetShardIterator, GetRecords, following new shards) and
// hands its records, as the events.DynamoDBEvent that Lambda would send, to
// the stream function's own handler: the local stack and the tests run the
// code that AWS runs on the table's stream.
package streamlocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Handler is the stream function's Lambda handler.
type Handler func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// Defaults of Poller.
const (
	DefaultBatchSize = 100
	DefaultInterval  = 250 * time.Millisecond
	DefaultRetries   = 3
	DefaultBackoff   = time.Second
)

// Poller reads a table's stream and invokes a handler with its records.
type Poller struct {
	// DynamoDB finds the table's stream; Streams reads it.
	DynamoDB *dynamodb.Client
	Streams  *dynamodbstreams.Client
	Table    string
	Handler  Handler
	Logger   *slog.Logger
	// BatchSize bounds the records of one invocation.
	BatchSize int32
	// Interval is how often Run polls.
	Interval time.Duration
	// Retries is how often a batch whose handler reports a failure is
	// invoked again (from the failed record) before its records are given
	// up, as MaximumRetryAttempts does in AWS; Backoff is the first wait
	// between two invocations, doubled each time.
	Retries int
	Backoff time.Duration

	streamARN string
	region    string
	shards    map[string]*shard
}

type shard struct {
	id, parent string
	iterator   *string
	last       string // the last sequence number read
	done       bool
}

// NewStreamsClient returns a DynamoDB Streams client for the endpoint and
// region of a DynamoDB Local client.
func NewStreamsClient(db *dynamodb.Client) *dynamodbstreams.Client {
	o := db.Options()
	return dynamodbstreams.New(dynamodbstreams.Options{
		Region:       o.Region,
		BaseEndpoint: o.BaseEndpoint,
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
}

// Run polls until ctx ends and returns nil then; it returns an error when
// the table has no stream.
func (p *Poller) Run(ctx context.Context) error {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	for {
		n, err := p.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, errNoStream) {
				return err
			}
			p.logger().Warn("stream poll failed; retrying", "err", err.Error())
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Drain polls until one pass over every shard finds no new record, so that
// whatever the handler wrote to the table in reaction (new outbox items)
// is handled too.
func (p *Poller) Drain(ctx context.Context) error {
	for {
		n, err := p.Poll(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// Poll reads the records added since the last call and invokes the handler
// with them, and returns how many it read.
func (p *Poller) Poll(ctx context.Context) (int, error) {
	recs, err := p.Next(ctx)
	if err != nil {
		return 0, err
	}
	size := int(p.BatchSize)
	if size <= 0 {
		size = DefaultBatchSize
	}
	for rest := recs; len(rest) > 0; {
		n := min(size, len(rest))
		p.invoke(ctx, rest[:n])
		rest = rest[n:]
	}
	return len(recs), nil
}

// invoke calls the handler with batch, invoking it again from the record
// that it reports failed, at most Retries times.
func (p *Poller) invoke(ctx context.Context, batch []events.DynamoDBEventRecord) {
	retries, wait := p.Retries, p.Backoff
	if retries == 0 {
		retries = DefaultRetries
	}
	if wait <= 0 {
		wait = DefaultBackoff
	}
	for attempt := 0; len(batch) > 0; attempt++ {
		resp, err := p.call(ctx, batch)
		failed := -1
		switch {
		case err != nil:
			failed = 0
			p.logger().Error("stream handler failed", "err", err.Error())
		case len(resp.BatchItemFailures) > 0:
			failed = len(batch)
			for _, f := range resp.BatchItemFailures {
				for i, r := range batch {
					if r.Change.SequenceNumber == f.ItemIdentifier {
						failed = min(failed, i)
					}
				}
			}
			if failed == len(batch) {
				failed = 0 // an unknown identifier fails the whole batch
			}
		}
		if failed < 0 {
			return
		}
		batch = batch[failed:]
		if attempt >= retries || ctx.Err() != nil {
			p.logger().Error("stream records given up after retries (in AWS they go to the on-failure queue)",
				"records", len(batch), "firstSequenceNumber", batch[0].Change.SequenceNumber)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (p *Poller) call(ctx context.Context, batch []events.DynamoDBEventRecord) (resp events.DynamoDBEventResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return p.Handler(ctx, events.DynamoDBEvent{Records: batch})
}

var errNoStream = errors.New("the table has no stream: its template definition needs a StreamSpecification")

// Next returns the records added to the stream since the last call, shard
// by shard (a parent shard before its children), without invoking the
// handler.
func (p *Poller) Next(ctx context.Context) ([]events.DynamoDBEventRecord, error) {
	if err := p.discover(ctx); err != nil {
		return nil, err
	}
	var out []events.DynamoDBEventRecord
	for _, id := range p.order() {
		s := p.shards[id]
		if s.done || (s.parent != "" && p.shards[s.parent] != nil && !p.shards[s.parent].done) {
			continue
		}
		recs, err := p.read(ctx, s)
		if err != nil {
			return out, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// discover finds the stream and any shard not seen yet.
func (p *Poller) discover(ctx context.Context) error {
	if p.streamARN == "" {
		desc, err := p.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(p.Table)})
		if err != nil {
			return fmt.Errorf("describe table %s: %w", p.Table, err)
		}
		if desc.Table.LatestStreamArn == nil {
			return fmt.Errorf("table %s: %w", p.Table, errNoStream)
		}
		p.streamARN = *desc.Table.LatestStreamArn
		p.region = p.DynamoDB.Options().Region
		p.shards = map[string]*shard{}
	}
	var start *string
	for {
		out, err := p.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(p.streamARN), ExclusiveStartShardId: start})
		if err != nil {
			return fmt.Errorf("describe stream: %w", err)
		}
		for _, sh := range out.StreamDescription.Shards {
			id := aws.ToString(sh.ShardId)
			if _, ok := p.shards[id]; !ok {
				p.shards[id] = &shard{id: id, parent: aws.ToString(sh.ParentShardId)}
			}
		}
		if out.StreamDescription.LastEvaluatedShardId == nil {
			return nil
		}
		start = out.StreamDescription.LastEvaluatedShardId
	}
}

// order returns the shard ids, parents first.
func (p *Poller) order() []string {
	ids := make([]string, 0, len(p.shards))
	for id := range p.shards {
		ids = append(ids, id)
	}
	depth := func(id string) int {
		d := 0
		for s := p.shards[id]; s != nil && s.parent != "" && d < 100; s = p.shards[s.parent] {
			d++
		}
		return d
	}
	sort.Slice(ids, func(i, j int) bool {
		if di, dj := depth(ids[i]), depth(ids[j]); di != dj {
			return di < dj
		}
		return ids[i] < ids[j]
	})
	return ids
}

// read returns the shard's records from its position, until GetRecords
// has nothing more.
func (p *Poller) read(ctx context.Context, s *shard) ([]events.DynamoDBEventRecord, error) {
	var out []events.DynamoDBEventRecord
	for {
		if s.iterator == nil {
			in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(p.streamARN), ShardId: aws.String(s.id), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
			if s.last != "" {
				in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(s.last)
			}
			it, err := p.Streams.GetShardIterator(ctx, in)
			if err != nil {
				var gone *types.ResourceNotFoundException
				if errors.As(err, &gone) {
					s.done = true
					return out, nil
				}
				return out, fmt.Errorf("shard %s: get iterator: %w", s.id, err)
			}
			s.iterator = it.ShardIterator
		}
		res, err := p.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: s.iterator, Limit: aws.Int32(1000)})
		if err != nil {
			var expired *types.ExpiredIteratorException
			if errors.As(err, &expired) {
				s.iterator = nil
				continue
			}
			return out, fmt.Errorf("shard %s: get records: %w", s.id, err)
		}
		for _, r := range res.Records {
			ev := p.event(r)
			s.last = ev.Change.SequenceNumber
			out = append(out, ev)
		}
		s.iterator = res.NextShardIterator
		if s.iterator == nil {
			s.done = true
			return out, nil
		}
		if len(res.Records) == 0 {
			return out, nil
		}
	}
}

// event converts a stream record into the record of a Lambda event.
func (p *Poller) event(r types.Record) events.DynamoDBEventRecord {
	ev := events.DynamoDBEventRecord{
		AWSRegion:      p.region,
		EventID:        aws.ToString(r.EventID),
		EventName:      string(r.EventName),
		EventSource:    "aws:dynamodb",
		EventVersion:   aws.ToString(r.EventVersion),
		EventSourceArn: p.streamARN,
	}
	if d := r.Dynamodb; d != nil {
		ev.Change = events.DynamoDBStreamRecord{
			Keys:           attributes(d.Keys),
			NewImage:       attributes(d.NewImage),
			OldImage:       attributes(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber),
			SizeBytes:      aws.ToInt64(d.SizeBytes),
			StreamViewType: string(d.StreamViewType),
		}
		if d.ApproximateCreationDateTime != nil {
			ev.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *d.ApproximateCreationDateTime}
		}
	}
	return ev
}

func attributes(m map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		out[k] = attribute(v)
	}
	return out
}

func attribute(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = attribute(e)
		}
		return events.NewListAttribute(l)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(attributes(v.Value))
	}
	return events.NewNullAttribute()
}

func (p *Poller) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}
