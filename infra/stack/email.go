package stack

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/seslocal"
	"licenseadmin/infra/streamlocal"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
)

// Local email: `run` starts the SES emulator (its inbox shows what the
// functions sent) and reads the table's stream, handing its records to the
// stream function's handler as Lambda would; so assigning a license, asking
// for an activation link or crossing a low-pool threshold sends real
// (emulated) mail, through the same code as in AWS.

// defaultSender is the From address of local mail (SENDER_EMAIL overrides it).
const defaultSender = "no-reply@license-admin.local"

// listenHost is the address the local services listen on: LISTEN_HOST,
// 127.0.0.1 by default (the sam local stack sets the Docker bridge's
// gateway address, which is how containers reach this machine).
func listenHost(e *cli.Env) string {
	if h := e.Getenv("LISTEN_HOST"); h != "" {
		return h
	}
	return "127.0.0.1"
}

// startEmail starts the SES emulator on SES_PORT (default 8005) unless
// SES_ENDPOINT names a running one, and points cfg's SES client at it.
func startEmail(ctx context.Context, e *cli.Env, root string, cfg *app.Config) (*seslocal.Server, error) {
	p, err := cli.Port(e, "SES_PORT", seslocal.DefaultPort)
	if err != nil {
		return nil, err
	}
	srv, err := seslocal.Start(ctx, seslocal.Options{Port: p, Dir: root, Host: listenHost(e)})
	if err != nil {
		return nil, err
	}
	cfg.Email.SESEndpoint = srv.Endpoint
	return srv, nil
}

// streamHandlers is the registry of the table's stream: the Lambda handler
// of every template function that has DynamoDB events, keyed by its
// logical id and built exactly as that function's main builds it
// (app.MustLoad is load). `run` refuses to start when one is missing.
func streamHandlers(load loader) map[string]streamlocal.Handler {
	return map[string]streamlocal.Handler{
		"ProcessTableStreamFunction": load(app.WithStream).Stream.Handle,
		"RecordUsageFunction":        load().UsageRecorder.HandleStream,
	}
}

// streamPollers returns one poller per DynamoDB event of tpl, each as the
// event's source mapping reads the stream: its function's handler and
// Timeout, the event's FilterCriteria, BatchSize, MaximumRetryAttempts
// and BisectBatchOnFunctionError, and its on-failure destination, a queue
// of the local SQS (sendTo).
func streamPollers(tpl *template.Template, handlers map[string]streamlocal.Handler, db *dynamodb.Client, table string,
	sendTo func(queue string, body []byte) error, logger *slog.Logger) ([]*streamlocal.Poller, error) {
	sources, err := tpl.StreamSources()
	if err != nil {
		return nil, err
	}
	var out []*streamlocal.Poller
	for _, src := range sources {
		h, ok := handlers[src.Function]
		if !ok {
			return nil, fmt.Errorf("no handler for the template's stream function %s: add it to streamHandlers in infra/stack/email.go", src.Function)
		}
		filter, err := streamlocal.ParseFilter(src.Filters)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", src.Function, err)
		}
		fn, _ := tpl.Function(src.Function)
		p := &streamlocal.Poller{
			DynamoDB: db, Streams: streamlocal.NewStreamsClient(db), Table: table,
			Function: src.Function, Handler: h, Filter: filter, BatchSize: int32(src.BatchSize),
			Retries: src.MaximumRetryAttempts, Bisect: src.BisectBatchOnFunctionError, Timeout: fn.Timeout,
			Logger: logger.With("function", src.Function),
		}
		if src.OnFailure != "" {
			queue := src.OnFailure
			p.OnFailure = func(_ context.Context, record []byte) error { return sendTo(queue, record) }
		}
		out = append(out, p)
	}
	return out, nil
}

// startStream runs pollers in the background until ctx ends; wait returns
// once they stopped.
func startStream(ctx context.Context, e *cli.Env, pollers []*streamlocal.Poller) (wait func()) {
	var wg sync.WaitGroup
	for _, p := range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				fmt.Fprintf(e.Stderr, "stream: %v\n", err)
			}
		}()
	}
	return wg.Wait
}
