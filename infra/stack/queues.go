package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/localsqs"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
)

// Local queues: `run` serves a minimal SQS (infra/localsqs) on SQS_PORT
// (default 9324) with every queue of the template. A queue that a
// function's SQS event names delivers to that function's handler as the
// event source mapping does: in batches of the event's BatchSize, each
// invocation bounded by the function's Timeout, a failed message visible
// again after the queue's VisibilityTimeout, and moved to the dead-letter
// queue after the redrive policy's maxReceiveCount. The other queues
// (dead-letter queues, on-failure destinations) keep their messages for
// ReceiveMessage: `aws sqs receive-message --endpoint-url` reads them.
// `usage` sends to it with the real SQS client, as the messaging service
// sends to UsageQueue in AWS.

// DefaultSQSPort is where the local SQS listens (SQS_PORT overrides it).
const DefaultSQSPort = 9324

// queueHandlers is the registry of the local queues: the Lambda handler of
// every template function that has SQS events, keyed by its logical id and
// built exactly as that function's main builds it (app.MustLoad is load).
// `run` refuses to start when one is missing.
func queueHandlers(load loader) map[string]localsqs.Handler {
	return map[string]localsqs.Handler{
		"IngestUsageFunction":   load().Usage.HandleSQS,
		"ExportLogsFunction":    load(app.WithExports).Exports.HandleSQS,
		"SendRemindersFunction": load(app.WithReminders).Reminders.HandleSQS,
	}
}

// localQueues is the local SQS of `run`.
type localQueues struct {
	ln       net.Listener
	endpoint string
	sources  []template.QueueSource
	tpl      *template.Template
	sqs      *localsqs.Server
	srv      *http.Server
	stopped  sync.WaitGroup
	cancel   context.CancelFunc
}

// listenQueues reads the template's queues, listens for the local SQS and
// points cfg's queue settings at it; serve starts it once the App exists.
func listenQueues(e *cli.Env, tpl *template.Template, cfg *app.Config) (*localQueues, error) {
	sources, err := tpl.QueueSources()
	if err != nil {
		return nil, err
	}
	p, err := cli.Port(e, "SQS_PORT", DefaultSQSPort)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost(e), strconv.Itoa(p)))
	if err != nil {
		return nil, fmt.Errorf("local SQS: listen on port %d (set SQS_PORT to use another; 0 picks a free one): %w", p, err)
	}
	q := &localQueues{ln: ln, endpoint: "http://" + ln.Addr().String(), sources: sources, tpl: tpl}
	cfg.Queues.SQSEndpoint = q.endpoint
	cfg.Queues.ExportQueueURL = q.url("ExportQueue")
	cfg.Queues.ReminderQueueURL = q.url("ReminderQueue")
	return q, nil
}

// url returns the local URL of the queue with the template's logical id.
func (q *localQueues) url(logicalID string) string {
	return q.endpoint + "/" + LocalAccountID + "/" + logicalID
}

// serve builds the template's queues, those consumed by a function with
// its handler from load, and serves them until stop.
func (q *localQueues) serve(ctx context.Context, load loader, logger *slog.Logger) error {
	queues, err := LocalQueueSet(q.tpl, q.sources, queueHandlers(load))
	if err != nil {
		q.ln.Close()
		return err
	}
	q.sqs = localsqs.New(LocalRegion, LocalAccountID, logger, queues...)
	ctx, q.cancel = context.WithCancel(ctx)
	q.srv = &http.Server{Handler: q.sqs, ReadHeaderTimeout: 10 * time.Second}
	q.stopped.Add(2)
	go func() {
		defer q.stopped.Done()
		if err := q.srv.Serve(q.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("local SQS stopped", "err", err.Error())
		}
	}()
	go func() {
		defer q.stopped.Done()
		q.sqs.Run(ctx)
	}()
	return nil
}

// LocalQueueSet is every queue of tpl as the local SQS serves it: those
// that sources name delivering to their function's handler with the
// event's and the queue's settings (the function's Timeout bounds each
// invocation), the others only stored. The benchmark serves the reminder
// queue with it, as `run` does.
func LocalQueueSet(tpl *template.Template, sources []template.QueueSource, handlers map[string]localsqs.Handler) ([]localsqs.Queue, error) {
	consumed := map[string]localsqs.Queue{}
	for _, s := range sources {
		h, ok := handlers[s.Function]
		if !ok {
			return nil, fmt.Errorf("no handler for the template's queue function %s: add it to queueHandlers in infra/stack/queues.go", s.Function)
		}
		fn, _ := tpl.Function(s.Function)
		consumed[s.Queue] = localsqs.Queue{
			Name: s.Queue, Handler: h, BatchSize: s.BatchSize, ReportBatchItemFailures: s.ReportBatchItemFailures,
			MaxReceiveCount: s.MaxReceiveCount, DeadLetter: s.DeadLetterQueue,
			Visibility: time.Duration(s.VisibilityTimeout) * time.Second, Timeout: fn.Timeout,
		}
	}
	var out []localsqs.Queue
	for _, name := range tpl.Queues() {
		if c, ok := consumed[name]; ok {
			out = append(out, c)
		} else {
			// ReceiveMessage hides what it returns for SQS's default 30 s.
			out = append(out, localsqs.Queue{Name: name, Visibility: 30 * time.Second})
		}
	}
	return out, nil
}

// send puts body on the queue name; the stream's on-failure destination
// uses it.
func (q *localQueues) send(name string, body []byte) error {
	_, err := q.sqs.Send(name, string(body), nil, 0)
	return err
}

// stop stops serving and delivering; it is safe before serve.
func (q *localQueues) stop() {
	if q.srv == nil {
		q.ln.Close()
		return
	}
	q.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	_ = q.srv.Shutdown(ctx)
	q.stopped.Wait()
}
