package main

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

	"licenseadmin/infra/localsqs"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
)

// Local queues: `run` serves a minimal SQS (infra/localsqs) on SQS_PORT
// (default 9324) with the template's queues, each delivering to the
// handler of the function its SQS event names, in batches of the event's
// BatchSize, with the queue's redrive policy. `usage` sends to it with the
// real SQS client, as the messaging service sends to UsageQueue in AWS.

// defaultSQSPort is where the local SQS listens (SQS_PORT overrides it).
const defaultSQSPort = 9324

// localVisibility is how long a failed message waits before it is
// delivered again locally (AWS waits for the queue's visibility timeout).
const localVisibility = time.Second

// queueHandlers is the registry of the local queues: the Lambda handler of
// every template function that has SQS events, keyed by its logical id and
// built exactly as that function's main builds it. `run` refuses to start
// when one is missing.
func queueHandlers(a *app.App) map[string]localsqs.Handler {
	return map[string]localsqs.Handler{
		"IngestUsageFunction":   a.Usage.HandleSQS,
		"ExportLogsFunction":    a.Exports.HandleSQS,
		"SendRemindersFunction": a.Reminders.HandleSQS,
	}
}

// localQueues is the local SQS of `run`.
type localQueues struct {
	ln       net.Listener
	endpoint string
	sources  []template.QueueSource
	srv      *http.Server
	stopped  sync.WaitGroup
	cancel   context.CancelFunc
}

// listenQueues reads the template's queues, listens for the local SQS and
// points cfg's queue settings at it; serve starts it once the App exists.
func listenQueues(e *env, tpl *template.Template, cfg *app.Config) (*localQueues, error) {
	sources, err := tpl.QueueSources()
	if err != nil {
		return nil, err
	}
	p, err := port(e, "SQS_PORT", defaultSQSPort)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost(e), strconv.Itoa(p)))
	if err != nil {
		return nil, fmt.Errorf("local SQS: listen on port %d (set SQS_PORT to use another; 0 picks a free one): %w", p, err)
	}
	q := &localQueues{ln: ln, endpoint: "http://" + ln.Addr().String(), sources: sources}
	cfg.Queues.SQSEndpoint = q.endpoint
	cfg.Queues.ExportQueueURL = q.url("ExportQueue")
	cfg.Queues.ReminderQueueURL = q.url("ReminderQueue")
	return q, nil
}

// url returns the local URL of the queue with the template's logical id.
func (q *localQueues) url(logicalID string) string {
	return q.endpoint + "/" + localAccountID + "/" + logicalID
}

// serve builds the queues with a's handlers and serves them until stop.
func (q *localQueues) serve(ctx context.Context, a *app.App, logger *slog.Logger) error {
	handlers := queueHandlers(a)
	var queues []localsqs.Queue
	dead := map[string]bool{}
	for _, s := range q.sources {
		h, ok := handlers[s.Function]
		if !ok {
			q.ln.Close()
			return fmt.Errorf("no handler for the template's queue function %s: add it to queueHandlers in infra/local/queues.go", s.Function)
		}
		queues = append(queues, localsqs.Queue{
			Name: s.Queue, Handler: h, BatchSize: s.BatchSize, ReportBatchItemFailures: s.ReportBatchItemFailures,
			MaxReceiveCount: s.MaxReceiveCount, DeadLetter: s.DeadLetterQueue, Visibility: localVisibility,
		})
		if s.DeadLetterQueue != "" {
			dead[s.DeadLetterQueue] = true
		}
	}
	for name := range dead {
		queues = append(queues, localsqs.Queue{Name: name})
	}
	sqs := localsqs.New(localRegion, localAccountID, logger, queues...)
	ctx, q.cancel = context.WithCancel(ctx)
	q.srv = &http.Server{Handler: sqs, ReadHeaderTimeout: 10 * time.Second}
	q.stopped.Add(2)
	go func() {
		defer q.stopped.Done()
		if err := q.srv.Serve(q.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("local SQS stopped", "err", err.Error())
		}
	}()
	go func() {
		defer q.stopped.Done()
		sqs.Run(ctx)
	}()
	return nil
}

// stop stops serving and delivering; it is safe before serve.
func (q *localQueues) stop() {
	if q.srv == nil {
		q.ln.Close()
		return
	}
	q.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = q.srv.Shutdown(ctx)
	q.stopped.Wait()
}
