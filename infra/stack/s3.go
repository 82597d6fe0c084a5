package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/s3local"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
	"licenseadmin/shared/importer"
)

// Local S3: `run` serves an S3-compatible store (infra/s3local) on S3_PORT
// (default 9000) with the files bucket (BUCKET_NAME, default
// license-admin-files). Presigned URLs point at it, so curl and browsers
// upload and download as they would from S3. Like the bucket's notification
// configuration in AWS, an object created under a template S3 event's
// filter invokes that event's function, asynchronously, with the event AWS
// sends; a failed invocation is retried twice, as Lambda retries
// asynchronous events. The import function's continuations (an
// asynchronous Invoke of itself in AWS) run the same way.

// Defaults of the local S3.
const (
	defaultS3Port = 9000
	defaultBucket = "license-admin-files"
)

// retryDelays are the waits before the retries of a failed asynchronous
// invocation (Lambda waits about 1 and 2 minutes).
var retryDelays = []time.Duration{time.Second, 2 * time.Second}

// importFunction is the function that continues itself.
const importFunction = "ImportUsersFunction"

// localS3 is the local S3 of `run`.
type localS3 struct {
	srv     *s3local.Server
	bucket  string
	sources []template.S3Source
	log     *slog.Logger

	// importHandler runs the import function's continuations; timeouts
	// are the functions' Timeout, each invocation's deadline.
	importHandler lambda.Handler
	timeouts      map[string]time.Duration

	ctx      context.Context
	cancel   context.CancelFunc
	inflight sync.WaitGroup
}

// startS3 reads the template's S3 events, starts the local S3 (in memory,
// or with its objects under dir when dir is not "") and points cfg's
// bucket settings at it; serve delivers its events once the functions
// exist.
func startS3(e *cli.Env, tpl *template.Template, cfg *app.Config, dir string) (*localS3, error) {
	sources, err := tpl.S3Sources()
	if err != nil {
		return nil, err
	}
	p, err := cli.Port(e, "S3_PORT", defaultS3Port)
	if err != nil {
		return nil, err
	}
	if cfg.S3.Bucket == "" {
		cfg.S3.Bucket = defaultBucket
	}
	addr := net.JoinHostPort(listenHost(e), strconv.Itoa(p))
	var srv *s3local.Server
	if dir == "" {
		srv, err = s3local.Start(addr, cfg.S3.Bucket)
	} else {
		srv, err = s3local.StartDir(addr, dir, cfg.S3.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("local S3 (set S3_PORT to use another port; 0 picks a free one): %w", err)
	}
	cfg.S3.Endpoint = srv.URL
	s := &localS3{srv: srv, bucket: cfg.S3.Bucket, sources: sources}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// serve routes the template's S3 events to the handlers load builds, and
// the import function's continuations to itself.
func (s *localS3) serve(tpl *template.Template, load loader, logger *slog.Logger) error {
	s.log = logger
	s.srv.Log = func(format string, args ...any) { logger.Debug(fmt.Sprintf(format, args...)) }
	s.timeouts = map[string]time.Duration{}
	for _, fn := range tpl.Functions {
		s.timeouts[fn.LogicalID] = fn.Timeout
	}
	handlers := s3Handlers(load)
	for _, src := range s.sources {
		h, ok := handlers[src.Function]
		if !ok {
			return fmt.Errorf("no handler for the template's S3 function %s: add it to s3Handlers in infra/stack/s3handlers.go", src.Function)
		}
		fn, lh := src.Function, lambda.NewHandler(h)
		s.srv.Notify(s3local.Notification{Bucket: s.bucket, Prefix: src.Prefix, Suffix: src.Suffix, Events: src.Events,
			Deliver: func(payload []byte) { s.invoke(fn, lh, payload) }})
	}
	if h, ok := handlers[importFunction]; ok {
		s.importHandler = lambda.NewHandler(h)
	}
	return nil
}

// localInvoke makes the import continuations of a, the App of a function,
// run here, as an asynchronous Invoke of the import function does in AWS;
// an App whose main did not ask for the files feature has none.
func (s *localS3) localInvoke(a *app.App) {
	if a.Imports.Invoker == nil {
		return
	}
	a.Imports.Invoker = importer.InvokeFunc(func(_ context.Context, ev importer.Event) error {
		if s.importHandler == nil {
			return fmt.Errorf("no local handler for %s", importFunction)
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		go s.invoke(importFunction, s.importHandler, payload)
		return nil
	})
}

// invoke runs an asynchronous invocation as Lambda does: a fresh context
// with a request id and the function's deadline, a panic turned into an
// error, and two retries of a failed invocation.
func (s *localS3) invoke(function string, h lambda.Handler, payload []byte) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	what := describe(payload)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := s.invokeOnce(function, h, payload)
		if err == nil {
			s.log.Info("invoked", "function", function, "event", what, "ms", time.Since(start).Milliseconds())
			return
		}
		if attempt == len(retryDelays) || s.ctx.Err() != nil {
			s.log.Error("invocation failed; not retried any more", "function", function, "event", what, "err", err.Error())
			return
		}
		s.log.Warn("invocation failed; retrying", "function", function, "event", what, "err", err.Error(), "in", retryDelays[attempt].String())
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(retryDelays[attempt]):
		}
	}
}

func (s *localS3) invokeOnce(function string, h lambda.Handler, payload []byte) (err error) {
	ctx, cancel := lambdaContext(s.ctx, function, s.timeouts[function])
	defer cancel()
	defer recoverPanic(&err)
	_, err = h.Invoke(ctx, payload)
	return err
}

// describe names an event in the log: the S3 event's name and key, or the
// continuation.
func describe(payload []byte) string {
	var ev importer.Event
	if json.Unmarshal(payload, &ev) == nil {
		if ev.Continue != nil {
			return "continue import " + ev.Continue.ImportID
		}
		var parts []string
		for _, r := range ev.Records {
			parts = append(parts, r.EventName+" "+r.S3.Object.URLDecodedKey)
		}
		if len(parts) > 0 {
			return strings.Join(parts, ", ")
		}
	}
	return string(payload)
}

// stop stops the store, cancels the invocations in flight and waits for
// them (they end at their next call to DynamoDB or S3).
func (s *localS3) stop() error {
	err := s.srv.Close()
	s.cancel()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ShutdownTimeout):
	}
	return err
}
