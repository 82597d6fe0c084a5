// Package streamlocal reads the DynamoDB stream of a table on DynamoDB Local
// (DescribeStream, GetShardIterator, GetRecords, following new shards) and
// hands its records, as the events.DynamoDBEvent that Lambda would send, to
// the stream function's own handler: the local stack and the tests run the
// code that AWS runs on the table's stream.
package streamlocal

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
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
	DefaultBackoff   = time.Second
)

// Poller is one event source mapping of a table's stream: it reads the
// stream and invokes a handler with its records, as Lambda does for one
// function (each function on the stream has its own Poller, reading the
// stream on its own, as each mapping does in AWS).
type Poller struct {
	// DynamoDB finds the table's stream; Streams reads it.
	DynamoDB *dynamodb.Client
	Streams  *dynamodbstreams.Client
	Table    string
	Handler  Handler
	Logger   *slog.Logger
	// Function names the function in logs and in on-failure records.
	Function string
	// Filter is the mapping's FilterCriteria: records it does not match
	// never reach the handler (nil admits every record).
	Filter *Filter
	// BatchSize bounds the records of one invocation; a batch never spans
	// two shards.
	BatchSize int32
	// Interval is how often Run polls.
	Interval time.Duration
	// Retries is MaximumRetryAttempts: how often a batch whose handler
	// fails is invoked again (from the failed record when the handler
	// reports batch item failures) before its records are given up: not
	// at all when 0, until it succeeds when negative. Backoff
	// is the first wait between two invocations, doubled each time.
	Retries int
	Backoff time.Duration
	// Bisect is BisectBatchOnFunctionError: a batch whose handler returns
	// an error is split in two halves, each invoked on its own, down to
	// single records; splitting does not count as a retry.
	Bisect bool
	// OnFailure is the on-failure destination: it receives, as JSON, the
	// description of each batch given up (the shard and sequence numbers
	// to re-drive from), as Lambda sends it to the mapping's
	// DestinationConfig.OnFailure. Nil only logs.
	OnFailure func(ctx context.Context, record []byte) error
	// Timeout is the function's timeout: the deadline of each invocation
	// (none when 0).
	Timeout time.Duration

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
// with those the filter admits, and returns how many it read.
func (p *Poller) Poll(ctx context.Context) (int, error) {
	byShard, err := p.next(ctx)
	n := 0
	size := int(p.BatchSize)
	if size <= 0 {
		size = DefaultBatchSize
	}
	for _, sr := range byShard {
		n += len(sr.records)
		var admitted []events.DynamoDBEventRecord
		for _, r := range sr.records {
			if p.Filter.Match(r) {
				admitted = append(admitted, r)
			}
		}
		for rest := admitted; len(rest) > 0; {
			k := min(size, len(rest))
			p.process(ctx, sr.shard, rest[:k], 0)
			rest = rest[k:]
		}
	}
	return n, err
}

// process invokes the handler with batch until it succeeds: a function
// error bisects the batch when Bisect is set, a reported item failure
// retries from that record; once the retries are spent the rest of the
// batch goes to the on-failure destination. attempts counts the retries
// of the records so far.
func (p *Poller) process(ctx context.Context, shardID string, batch []events.DynamoDBEventRecord, attempts int) {
	retries, wait := p.Retries, p.Backoff
	if wait <= 0 {
		wait = DefaultBackoff
	}
	for i := 0; i < attempts; i++ {
		wait *= 2
	}
	for len(batch) > 0 {
		resp, err := p.call(ctx, batch)
		failed := -1
		switch {
		case err != nil:
			p.logger().Error("stream handler failed", "function", p.Function, "records", len(batch), "err", err.Error())
			if p.Bisect && len(batch) > 1 {
				half := len(batch) / 2
				p.process(ctx, shardID, batch[:half], attempts)
				p.process(ctx, shardID, batch[half:], attempts)
				return
			}
			failed = 0
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
		if (retries >= 0 && attempts >= retries) || ctx.Err() != nil {
			p.giveUp(ctx, shardID, batch, attempts+1)
			return
		}
		attempts++
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// giveUp sends the description of batch to the on-failure destination.
func (p *Poller) giveUp(ctx context.Context, shardID string, batch []events.DynamoDBEventRecord, invocations int) {
	p.logger().Error("stream records given up after retries; their description goes to the on-failure destination",
		"function", p.Function, "records", len(batch), "firstSequenceNumber", batch[0].Change.SequenceNumber)
	if p.OnFailure == nil {
		return
	}
	first, last := batch[0], batch[len(batch)-1]
	rec := FailureRecord{Version: "1.0", Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z")}
	rec.RequestContext.RequestID = rand.Text()
	rec.RequestContext.FunctionARN = "arn:aws:lambda:" + p.region + ":" + localAccountID + ":function:" + p.Function
	rec.RequestContext.Condition = "RetryAttemptsExhausted"
	rec.RequestContext.ApproximateInvokeCount = invocations
	rec.ResponseContext.StatusCode = 200
	rec.ResponseContext.ExecutedVersion = "$LATEST"
	rec.ResponseContext.FunctionError = "Unhandled"
	rec.DDBStreamBatchInfo = BatchInfo{
		ShardID: shardID, StartSequenceNumber: first.Change.SequenceNumber, EndSequenceNumber: last.Change.SequenceNumber,
		ApproximateArrivalOfFirstRecord: first.Change.ApproximateCreationDateTime.UTC().Format(time.RFC3339),
		ApproximateArrivalOfLastRecord:  last.Change.ApproximateCreationDateTime.UTC().Format(time.RFC3339),
		BatchSize:                       len(batch), StreamARN: p.streamARN,
	}
	b, _ := json.Marshal(rec)
	ctx = context.WithoutCancel(ctx)
	if err := p.OnFailure(ctx, b); err != nil {
		p.logger().Error("stream on-failure destination refused the record", "function", p.Function, "err", err.Error())
	}
}

// FailureRecord is what Lambda sends to a stream mapping's on-failure
// destination about a batch it gave up.
type FailureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	Version            string    `json:"version"`
	Timestamp          string    `json:"timestamp"`
	DDBStreamBatchInfo BatchInfo `json:"DDBStreamBatchInfo"`
}

// BatchInfo locates a batch given up in the stream.
type BatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamARN                       string `json:"streamArn"`
}

// localAccountID is the account id in local ARNs.
const localAccountID = "123456789012"

func (p *Poller) call(ctx context.Context, batch []events.DynamoDBEventRecord) (resp events.DynamoDBEventResponse, err error) {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), p.Timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	resp, err = p.Handler(ctx, events.DynamoDBEvent{Records: batch})
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("handler timed out after %s", p.Timeout)
	}
	return resp, err
}

var errNoStream = errors.New("the table has no stream: its template definition needs a StreamSpecification")

// Next returns the records added to the stream since the last call, shard
// by shard (a parent shard before its children), without invoking the
// handler.
func (p *Poller) Next(ctx context.Context) ([]events.DynamoDBEventRecord, error) {
	byShard, err := p.next(ctx)
	var out []events.DynamoDBEventRecord
	for _, sr := range byShard {
		out = append(out, sr.records...)
	}
	return out, err
}

// shardRecords are records read from one shard.
type shardRecords struct {
	shard   string
	records []events.DynamoDBEventRecord
}

func (p *Poller) next(ctx context.Context) ([]shardRecords, error) {
	if err := p.discover(ctx); err != nil {
		return nil, err
	}
	var out []shardRecords
	for _, id := range p.order() {
		s := p.shards[id]
		if s.done || (s.parent != "" && p.shards[s.parent] != nil && !p.shards[s.parent].done) {
			continue
		}
		recs, err := p.read(ctx, s)
		if len(recs) > 0 {
			out = append(out, shardRecords{shard: id, records: recs})
		}
		if err != nil {
			return out, err
		}
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

func (p *Poller) logger() *slog.Logger { return cmp.Or(p.Logger, slog.Default()) }
