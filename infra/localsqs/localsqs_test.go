package localsqs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"licenseadmin/infra/localsqs"
)

// recorder is a queue handler that remembers every invocation and fails
// the messages fail says.
type recorder struct {
	mu      sync.Mutex
	batches [][]events.SQSMessage
	fail    func(m events.SQSMessage) bool
	err     error
}

func (r *recorder) handle(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, ev.Records)
	if r.err != nil {
		return events.SQSEventResponse{}, r.err
	}
	var resp events.SQSEventResponse
	for _, m := range ev.Records {
		if r.fail != nil && r.fail(m) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

// deliveries returns, per body, the receive counts it was delivered with.
func (r *recorder) deliveries() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, b := range r.batches {
		for _, m := range b {
			out[m.Body] = append(out[m.Body], m.Attributes["ApproximateReceiveCount"])
		}
	}
	return out
}

// start runs a server with a "work" queue (handled by h, redrive to "dlq"
// after 3 receives) and returns it and an SQS client of the real SDK
// pointed at it.
func start(t *testing.T, h localsqs.Handler, report bool) (*localsqs.Server, *sqs.Client, string) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := localsqs.New("us-east-1", "123456789012", logger,
		localsqs.Queue{Name: "work", Handler: h, BatchSize: 10, ReportBatchItemFailures: report, MaxReceiveCount: 3, DeadLetter: "dlq", Visibility: 10 * time.Millisecond},
		localsqs.Queue{Name: "dlq"})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(hs.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	return srv, client, srv.QueueURL(hs.URL, "work")
}

func send(t *testing.T, c *sqs.Client, url, body string) string {
	t.Helper()
	out, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return aws.ToString(out.MessageId)
}

func idle(t *testing.T, srv *localsqs.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitIdle(ctx); err != nil {
		t.Fatalf("queues not idle: %v", err)
	}
}

// TestSendAndDeliver ensures the real SDK client can send (its MD5 checks
// of body and attributes pass) and the handler gets the message as Lambda
// sends it: body, id, attributes, receive count, source and ARN.
func TestSendAndDeliver(t *testing.T) {
	rec := &recorder{}
	srv, c, url := start(t, rec.handle, true)
	out, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String(`{"hello":"world"}`),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("usage")},
			"blob": {DataType: aws.String("Binary"), BinaryValue: []byte{1, 2, 3}},
		},
	})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	idle(t, srv)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.batches) != 1 || len(rec.batches[0]) != 1 {
		t.Fatalf("batches %v, want one message once", rec.batches)
	}
	m := rec.batches[0][0]
	if m.MessageId != aws.ToString(out.MessageId) || m.Body != `{"hello":"world"}` || m.EventSource != "aws:sqs" ||
		m.EventSourceARN != "arn:aws:sqs:us-east-1:123456789012:work" || m.Attributes["ApproximateReceiveCount"] != "1" ||
		m.MessageAttributes["kind"].StringValue == nil || *m.MessageAttributes["kind"].StringValue != "usage" ||
		!slices.Equal(m.MessageAttributes["blob"].BinaryValue, []byte{1, 2, 3}) {
		t.Fatalf("delivered %+v", m)
	}
}

// TestBatchItemFailures ensures only the messages a response names are
// delivered again, with a higher receive count, and that the others are
// deleted.
func TestBatchItemFailures(t *testing.T) {
	var once sync.Map
	rec := &recorder{fail: func(m events.SQSMessage) bool {
		_, seen := once.LoadOrStore(m.Body, true)
		return m.Body == "b" && !seen
	}}
	srv, c, url := start(t, rec.handle, true)
	for _, b := range []string{"a", "b", "c"} {
		send(t, c, url, b)
	}
	idle(t, srv)
	got := rec.deliveries()
	if !slices.Equal(got["a"], []string{"1"}) || !slices.Equal(got["c"], []string{"1"}) || !slices.Equal(got["b"], []string{"1", "2"}) {
		t.Fatalf("deliveries (receive counts per body) %v, want a and c once, b twice", got)
	}
	if n := len(srv.Messages("work")) + len(srv.Messages("dlq")); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

// TestDeadLetter ensures a message that keeps failing is delivered
// maxReceiveCount times, then moved to the dead-letter queue.
func TestDeadLetter(t *testing.T) {
	rec := &recorder{fail: func(m events.SQSMessage) bool { return m.Body == "poison" }}
	srv, c, url := start(t, rec.handle, true)
	send(t, c, url, "poison")
	send(t, c, url, "fine")
	idle(t, srv)
	got := rec.deliveries()
	if !slices.Equal(got["poison"], []string{"1", "2", "3"}) || !slices.Equal(got["fine"], []string{"1"}) {
		t.Fatalf("deliveries %v, want poison 3 times, fine once", got)
	}
	dlq := srv.Messages("dlq")
	if len(dlq) != 1 || dlq[0].Body != "poison" {
		t.Fatalf("dead-letter queue %+v, want the poison message", dlq)
	}
}

// TestHandlerErrorFailsBatch ensures an error (or a response without
// ReportBatchItemFailures) is handled as Lambda does: an error fails the
// whole batch; item failures are ignored when the mapping does not report
// them.
func TestHandlerErrorFailsBatch(t *testing.T) {
	rec := &recorder{err: errors.New("boom")}
	srv, c, url := start(t, rec.handle, true)
	send(t, c, url, "x")
	idle(t, srv)
	if got := rec.deliveries()["x"]; !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("deliveries of x %v, want 3 before the dead-letter queue", got)
	}

	rec2 := &recorder{fail: func(events.SQSMessage) bool { return true }}
	srv2, c2, url2 := start(t, rec2.handle, false)
	send(t, c2, url2, "y")
	idle(t, srv2)
	if got := rec2.deliveries()["y"]; !slices.Equal(got, []string{"1"}) {
		t.Fatalf("deliveries of y %v, want once: item failures need ReportBatchItemFailures", got)
	}
}

// TestUnknownItemIdentifier ensures a response naming a message that is
// not in the batch fails the whole batch, as Lambda does.
func TestUnknownItemIdentifier(t *testing.T) {
	calls := 0
	h := func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		calls++
		if calls == 1 {
			return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "not-a-message"}}}, nil
		}
		return events.SQSEventResponse{}, nil
	}
	srv, c, url := start(t, h, true)
	send(t, c, url, "z")
	idle(t, srv)
	if calls != 2 {
		t.Fatalf("%d calls, want 2: the batch is delivered again", calls)
	}
}

// TestAPIErrors ensures unknown queues and actions answer SQS errors that
// the SDK decodes, and that GetQueueUrl finds a queue.
func TestAPIErrors(t *testing.T) {
	_, c, url := start(t, (&recorder{}).handle, true)
	_, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url + "-missing"), MessageBody: aws.String("x")})
	var missing *sqstypes.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Fatalf("SendMessage to an unknown queue: %v, want QueueDoesNotExist", err)
	}
	_, err = c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("")})
	if err == nil {
		t.Fatal("SendMessage without a body succeeded")
	}
	got, err := c.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String("work")})
	if err != nil || aws.ToString(got.QueueUrl) != url {
		t.Fatalf("GetQueueUrl = %v, %v; want %s", aws.ToString(got.QueueUrl), err, url)
	}
	if _, err := c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err == nil {
		t.Fatal("DeleteQueue succeeded; the local SQS does not support it")
	}
}

// TestReadDeadLetterQueue ensures a dead-letter queue can be read as in
// AWS, with the real SDK client (the AWS CLI speaks the same protocol):
// ListQueues finds it, GetQueueAttributes counts its messages,
// ReceiveMessage hides what it returns for the visibility timeout, and
// DeleteMessage removes a message by its receipt handle (a stale one
// removes nothing).
func TestReadDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{fail: func(m events.SQSMessage) bool { return true }}
	srv, c, url := start(t, rec.handle, true)
	send(t, c, url, "poison")
	idle(t, srv)

	list, err := c.ListQueues(ctx, &sqs.ListQueuesInput{})
	if err != nil {
		t.Fatal(err)
	}
	dlq := strings.TrimSuffix(url, "work") + "dlq"
	if !slices.Equal(list.QueueUrls, []string{dlq, url}) {
		t.Fatalf("ListQueues = %v, want %s and %s", list.QueueUrls, dlq, url)
	}
	count := func(attr sqstypes.QueueAttributeName) string {
		t.Helper()
		out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(dlq), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes[string(attr)]
	}
	if n := count(sqstypes.QueueAttributeNameApproximateNumberOfMessages); n != "1" {
		t.Fatalf("dead-letter queue holds %s messages, want 1", n)
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10, VisibilityTimeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != "poison" || aws.ToString(got.Messages[0].ReceiptHandle) == "" {
		t.Fatalf("ReceiveMessage = %+v, want the poison message", got.Messages)
	}
	again, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq)})
	if err != nil || len(again.Messages) != 0 || count(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible) != "1" {
		t.Fatalf("a received message is visible again at once: %+v %v", again.Messages, err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: aws.String("x#9")}); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages("dlq")) != 1 {
		t.Fatal("a stale receipt handle deleted the message")
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: got.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages("dlq")) != 0 || count(sqstypes.QueueAttributeNameApproximateNumberOfMessages) != "0" {
		t.Fatal("DeleteMessage left the message")
	}
}

// TestVisibilityAndTimeout ensures a failed message waits for the queue's
// visibility timeout before it is delivered again (not a shorter local
// delay), and that each invocation's context carries the function's
// timeout as its deadline, a handler running past it failing the batch.
func TestVisibilityAndTimeout(t *testing.T) {
	var mu sync.Mutex
	var deadlines []time.Duration
	h := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		dl, ok := ctx.Deadline()
		mu.Lock()
		if ok {
			deadlines = append(deadlines, time.Until(dl))
		} else {
			deadlines = append(deadlines, -1)
		}
		mu.Unlock()
		<-ctx.Done() // runs past its timeout
		return events.SQSEventResponse{}, nil
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := localsqs.New("us-east-1", "123456789012", logger,
		localsqs.Queue{Name: "slow", Handler: h, Visibility: time.Hour, Timeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := srv.Send("slow", "m", nil, 0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		msgs := srv.Messages("slow")
		if len(msgs) == 1 && msgs[0].Receives == 1 && msgs[0].ReceiptHandle != "" {
			mu.Lock()
			n := len(deadlines)
			mu.Unlock()
			if n == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the message was not delivered")
		}
	}
	time.Sleep(500 * time.Millisecond) // past the timeout: the batch failed
	mu.Lock()
	defer mu.Unlock()
	if len(deadlines) != 1 || deadlines[0] <= 0 || deadlines[0] > 200*time.Millisecond {
		t.Fatalf("invocation deadlines %v: want one invocation, its deadline the 200 ms timeout", deadlines)
	}
	if msgs := srv.Messages("slow"); len(msgs) != 1 || msgs[0].Receives != 1 {
		t.Fatalf("messages %+v: the timed-out message must stay, hidden for the hour of visibility", msgs)
	}
}
