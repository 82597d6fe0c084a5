// Package localsqs is a minimal SQS for the local stack: an HTTP endpoint
// that speaks the SQS JSON protocol (AWS JSON 1.0) for SendMessage,
// GetQueueUrl, ListQueues, ReceiveMessage, DeleteMessage and
// GetQueueAttributes, so that the real SDK client sends to it and the AWS
// CLI reads a dead-letter queue from it, and in-memory
// queues that deliver batches to the functions' own handlers as the
// events.SQSEvent Lambda would send, honouring batchItemFailures by
// redelivering the failed messages after a visibility timeout, and moving a
// message to its dead-letter queue after its maximum receive count, as an
// SQS event source mapping with a redrive policy does.
package localsqs

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Handler is an SQS-triggered function's Lambda handler.
type Handler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Queue configures one queue.
type Queue struct {
	// Name is the queue's name, the last segment of its URL.
	Name string
	// Handler consumes the queue; a queue without one (a dead-letter
	// queue) keeps its messages for Messages to read.
	Handler Handler
	// BatchSize bounds the messages of one invocation (10 when 0).
	BatchSize int
	// ReportBatchItemFailures makes a response's BatchItemFailures fail
	// only those messages; without it only an error fails the batch, as
	// with an event source mapping without FunctionResponseTypes.
	ReportBatchItemFailures bool
	// MaxReceiveCount and DeadLetter are the redrive policy: a message
	// received that many times and failed again moves to the queue named
	// DeadLetter. Zero keeps failed messages forever.
	MaxReceiveCount int
	DeadLetter      string
	// Visibility is how long a failed message stays invisible before it
	// is delivered again (a second when 0: the local stack need not wait
	// as long as AWS).
	Visibility time.Duration
	// Timeout bounds one invocation (the function's timeout; a minute
	// when 0).
	Timeout time.Duration
}

// Message is a message as it is stored.
type Message struct {
	ID         string
	Body       string
	Attributes map[string]events.SQSMessageAttribute
	// Receives counts the deliveries so far; ReceiptHandle names the
	// last one (DeleteMessage takes it).
	Receives      int
	ReceiptHandle string
	SentAt        time.Time

	firstReceive time.Time
	visibleAt    time.Time
	inFlight     bool
}

type queue struct {
	Queue
	msgs []*Message
	wake chan struct{}
}

// Server holds the queues and serves the SQS API (see api.go).
type Server struct {
	// Region and AccountID appear in queue URLs and ARNs.
	Region    string
	AccountID string
	Logger    *slog.Logger
	// now returns the time; tests replace it.
	now func() time.Time

	mu     sync.Mutex
	queues map[string]*queue
	// changed is closed and replaced whenever messages are added or
	// finish a delivery, for WaitIdle.
	changed chan struct{}
}

// Defaults.
const (
	DefaultBatchSize  = 10
	DefaultVisibility = time.Second
	DefaultTimeout    = time.Minute
	// MaxMessageBytes is SQS's limit on a message's body and attributes.
	MaxMessageBytes = 1 << 20
)

// New returns a Server with the given queues.
func New(region, accountID string, logger *slog.Logger, queues ...Queue) *Server {
	s := &Server{Region: region, AccountID: accountID, Logger: logger, now: time.Now, queues: map[string]*queue{}, changed: make(chan struct{})}
	for _, q := range queues {
		if q.BatchSize <= 0 {
			q.BatchSize = DefaultBatchSize
		}
		if q.Visibility <= 0 {
			q.Visibility = DefaultVisibility
		}
		if q.Timeout <= 0 {
			q.Timeout = DefaultTimeout
		}
		s.queues[q.Name] = &queue{Queue: q, wake: make(chan struct{}, 1)}
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return s
}

// ARN returns the ARN of queue name.
func (s *Server) ARN(name string) string {
	return "arn:aws:sqs:" + s.Region + ":" + s.AccountID + ":" + name
}

// Send stores a message on queue name, visible after delay, and returns its
// id; it fails for an unknown queue.
func (s *Server) Send(name, body string, attrs map[string]events.SQSMessageAttribute, delay time.Duration) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return "", fmt.Errorf("no queue %q", name)
	}
	now := s.now()
	m := &Message{ID: newUUID(), Body: body, Attributes: attrs, SentAt: now, visibleAt: now.Add(delay)}
	q.msgs = append(q.msgs, m)
	s.notify(q)
	return m.ID, nil
}

// Messages returns a copy of the messages of queue name, in flight or not,
// oldest first.
func (s *Server) Messages(name string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return nil
	}
	out := make([]Message, len(q.msgs))
	for i, m := range q.msgs {
		out[i] = *m
	}
	return out
}

// WaitIdle waits until every queue with a handler is empty, or ctx ends.
func (s *Server) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		busy := false
		for _, q := range s.queues {
			busy = busy || (q.Handler != nil && len(q.msgs) > 0)
		}
		changed := s.changed
		s.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// notify wakes q's delivery loop and WaitIdle; s.mu is held.
func (s *Server) notify(q *queue) {
	select {
	case q.wake <- struct{}{}:
	default:
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Run delivers the messages of every queue that has a handler until ctx
// ends.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range s.queues {
		if q.Handler == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.deliver(ctx, q)
		}()
	}
	wg.Wait()
}

// deliver is the event source mapping of one queue: it takes a batch of
// visible messages, invokes the handler, and settles the batch.
func (s *Server) deliver(ctx context.Context, q *queue) {
	for {
		batch, wait := s.receive(q)
		if len(batch) == 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-q.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		failed := s.invoke(ctx, q, batch)
		s.settle(q, batch, failed)
	}
}

// receive takes up to a batch of visible messages and marks them in
// flight; with none, it returns how long to wait for the next one.
func (s *Server) receive(q *queue) ([]*Message, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	wait := time.Second
	var batch []*Message
	for _, m := range q.msgs {
		if m.inFlight {
			continue
		}
		if m.visibleAt.After(now) {
			wait = min(wait, m.visibleAt.Sub(now))
			continue
		}
		m.inFlight = true
		m.received(now)
		batch = append(batch, m)
		if len(batch) == q.BatchSize {
			break
		}
	}
	return batch, wait
}

// invoke calls the handler with the batch as Lambda would and returns the
// ids of the messages that failed: those the response names, or all of
// them when the handler errs, panics, times out, or names a message that
// is not in the batch (as Lambda treats an invalid response).
func (s *Server) invoke(ctx context.Context, q *queue, batch []*Message) (failed map[string]bool) {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	all := map[string]bool{}
	for i, m := range batch {
		all[m.ID] = true
		ev.Records[i] = events.SQSMessage{
			MessageId:     m.ID,
			ReceiptHandle: m.ReceiptHandle,
			Body:          m.Body,
			Md5OfBody:     md5Hex([]byte(m.Body)),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(m.Receives),
				"SentTimestamp":                    strconv.FormatInt(m.SentAt.UnixMilli(), 10),
				"SenderId":                         s.AccountID,
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
			},
			MessageAttributes: m.Attributes,
			EventSource:       "aws:sqs",
			EventSourceARN:    s.ARN(q.Name),
			AWSRegion:         s.Region,
		}
	}
	ictx, cancel := context.WithTimeout(ctx, q.Timeout)
	defer cancel()
	resp, err := func() (resp events.SQSEventResponse, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
			}
		}()
		return q.Handler(ictx, ev)
	}()
	if err == nil && ictx.Err() != nil {
		err = fmt.Errorf("handler timed out after %s", q.Timeout)
	}
	if err != nil {
		s.Logger.Error("queue handler failed; the batch will be delivered again", "queue", q.Name, "messages", len(batch), "err", err.Error())
		return all
	}
	if !q.ReportBatchItemFailures {
		return nil
	}
	failed = map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if !all[f.ItemIdentifier] {
			s.Logger.Error("queue handler reported an unknown message; the whole batch fails", "queue", q.Name, "itemIdentifier", f.ItemIdentifier)
			return all
		}
		failed[f.ItemIdentifier] = true
	}
	return failed
}

// settle deletes the messages that succeeded and makes the failed ones
// visible again after the visibility timeout, or moves them to the
// dead-letter queue once they reached the maximum receive count.
func (s *Server) settle(q *queue, batch []*Message, failed map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := map[*Message]bool{}
	now := s.now()
	for _, m := range batch {
		m.inFlight = false
		if !failed[m.ID] {
			done[m] = true
			continue
		}
		if q.MaxReceiveCount > 0 && m.Receives >= q.MaxReceiveCount {
			done[m] = true
			if dl, ok := s.queues[q.DeadLetter]; ok {
				moved := *m
				moved.Receives, moved.firstReceive, moved.visibleAt = 0, time.Time{}, now
				dl.msgs = append(dl.msgs, &moved)
				s.notify(dl)
			}
			s.Logger.Warn("message moved to the dead-letter queue", "queue", q.Name, "deadLetterQueue", q.DeadLetter, "messageId", m.ID, "receives", m.Receives)
			continue
		}
		m.visibleAt = now.Add(q.Visibility)
	}
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if !done[m] {
			kept = append(kept, m)
		}
	}
	clear(q.msgs[len(kept):])
	q.msgs = kept
	s.notify(q)
}

// received counts one more receive of m at now.
func (m *Message) received(now time.Time) {
	m.Receives++
	m.ReceiptHandle = m.ID + "#" + strconv.Itoa(m.Receives)
	if m.firstReceive.IsZero() {
		m.firstReceive = now
	}
}

// Receive takes up to max visible messages of queue name for a consumer
// other than its handler (ReceiveMessage): they stay on the queue, hidden
// for visibility (the queue's own when 0), until Delete removes them. With
// none visible it waits up to wait for one.
func (s *Server) Receive(ctx context.Context, name string, max int, visibility, wait time.Duration) ([]Message, error) {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		q, ok := s.queues[name]
		if !ok {
			s.mu.Unlock()
			return nil, fmt.Errorf("no queue %q", name)
		}
		if visibility <= 0 {
			visibility = q.Visibility
		}
		now := s.now()
		var out []Message
		for _, m := range q.msgs {
			if len(out) == max {
				break
			}
			if m.inFlight || m.visibleAt.After(now) {
				continue
			}
			m.received(now)
			m.visibleAt = now.Add(visibility)
			out = append(out, *m)
		}
		changed := s.changed
		s.mu.Unlock()
		if len(out) > 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-changed:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// Delete removes the message of queue name that receipt (a ReceiptHandle
// of its last receive) names; a stale receipt removes nothing, as in SQS.
func (s *Server) Delete(name, receipt string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return fmt.Errorf("no queue %q", name)
	}
	for i, m := range q.msgs {
		if m.ReceiptHandle == receipt && !m.inFlight {
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			s.notify(q)
			return nil
		}
	}
	return nil
}

// QueueNames returns the names of the queues, sorted.
func (s *Server) QueueNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.queues))
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// attributesMD5 is SQS's digest of message attributes: for each attribute
// by name, the length-prefixed name, data type, a transport byte (1 string,
// 2 binary) and the length-prefixed value.
func attributesMD5(attrs map[string]events.SQSMessageAttribute) string {
	names := slices.Sorted(maps.Keys(attrs))
	h := md5.New()
	put := func(b []byte) {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	for _, n := range names {
		a := attrs[n]
		put([]byte(n))
		put([]byte(a.DataType))
		if a.BinaryValue != nil {
			h.Write([]byte{2})
			put(a.BinaryValue)
		} else {
			h.Write([]byte{1})
			put([]byte(*a.StringValue))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// newUUID returns a random (version 4) UUID, the shape of SQS message ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
