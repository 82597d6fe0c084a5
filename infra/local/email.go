package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/seslocal"
	"licenseadmin/infra/streamlocal"
	"licenseadmin/shared/app"
)

// Local email: `run` starts the SES emulator (its inbox shows what the
// functions sent) and reads the table's stream, handing its records to the
// stream function's handler as Lambda would; so assigning a license, asking
// for an activation link or crossing a low-pool threshold sends real
// (emulated) mail, through the same code as in AWS.

// defaultSender is the From address of local mail (SENDER_EMAIL overrides it).
const defaultSender = "no-reply@license-admin.local"

// port returns the port the environment variable name sets, or def.
func port(e *env, name string, def int) (int, error) {
	v := e.getenv(name)
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%s %q: want a port number (0 picks a free one)", name, v)
	}
	return p, nil
}

// listenHost is the address the local services listen on: LISTEN_HOST,
// 127.0.0.1 by default (the sam local stack sets the Docker bridge's
// gateway address, which is how containers reach this machine).
func listenHost(e *env) string {
	if h := e.getenv("LISTEN_HOST"); h != "" {
		return h
	}
	return "127.0.0.1"
}

// startEmail starts the SES emulator on SES_PORT (default 8005) unless
// SES_ENDPOINT names a running one, and points cfg's SES client at it.
func startEmail(ctx context.Context, e *env, root string, cfg *app.Config) (*seslocal.Server, error) {
	p, err := port(e, "SES_PORT", seslocal.DefaultPort)
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

// streamHandlers is the registry of the table stream's consumers: the
// Lambda handler of every template function that has a DynamoDB stream
// event, keyed by its logical id and built exactly as that function's main
// builds it. Each reads the stream on its own, as each event source
// mapping does in AWS.
func streamHandlers(a *app.App) map[string]streamlocal.Handler {
	return map[string]streamlocal.Handler{
		"ProcessTableStreamFunction": a.Stream.Handle,
		"RecordUsageFunction":        a.UsageRecorder.HandleStream,
	}
}

// startStream reads the table's stream in the background, once per
// function of streamHandlers, and hands its records to that function's
// handler, until ctx ends; wait returns once every reader stopped.
func startStream(ctx context.Context, e *env, a *app.App, db *dynamodb.Client) (wait func()) {
	var wg sync.WaitGroup
	for id, h := range streamHandlers(a) {
		p := &streamlocal.Poller{
			DynamoDB: db,
			Streams:  streamlocal.NewStreamsClient(db),
			Table:    a.Config.TableName,
			Handler:  h,
			Logger:   slog.New(slog.NewTextHandler(e.stderr, nil)).With("component", "stream", "function", id),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				fmt.Fprintf(e.stderr, "stream (%s): %v\n", id, err)
			}
		}()
	}
	return wg.Wait
}
