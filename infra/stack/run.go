package stack

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"licenseadmin"
	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
)

// Defaults of `run`, each overridden by the environment variable named.
const (
	defaultAPIAddr = "127.0.0.1:3000" // API_ADDR
	defaultTable   = "license-admin"  // TABLE_NAME
	dynamoDBPort   = 8000             // DYNAMODB_ENDPOINT replaces DynamoDB Local
)

// ShutdownTimeout bounds how long in-flight requests may finish on Ctrl-C.
const ShutdownTimeout = 5 * time.Second

// Run runs the local system in the foreground until ctx ends (Ctrl-C):
// DynamoDB Local with the template's table, the SES emulator, the table's
// stream handed to the stream function (outbox emails), and the HTTP API.
func Run(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "run")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError{Msg: "run takes no arguments"}
	}
	root, err := dynamolocal.ModuleRoot(e.Dir)
	if err != nil {
		return err
	}
	key, err := LoadOrCreateKey(root)
	if err != nil {
		return err
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return err
	}
	cfg, err := AppConfig(e)
	if err != nil {
		return err
	}

	ddbPort, err := cli.Port(e, "DYNAMODB_PORT", dynamoDBPort)
	if err != nil {
		return err
	}
	data, err := dataDirs(e, root)
	if err != nil {
		return err
	}
	ddb, err := dynamolocal.Start(ctx, dynamolocal.Options{Port: ddbPort, Dir: root, DataDir: data.dynamoDB})
	if err != nil {
		return err
	}
	defer func() {
		if err := ddb.Stop(); err != nil {
			fmt.Fprintln(e.Stderr, err)
		}
	}()
	cfg.DynamoDBEndpoint = ddb.Endpoint
	client, err := dynamolocal.Client(ctx, ddb.Endpoint)
	if err != nil {
		return err
	}
	created, err := dynamolocal.EnsureTable(ctx, client, cfg.TableName)
	if err != nil {
		return err
	}
	mail, err := startEmail(ctx, e, root, &cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := mail.Stop(); err != nil {
			fmt.Fprintln(e.Stderr, err)
		}
	}()

	queues, err := listenQueues(e, tpl, &cfg)
	if err != nil {
		return err
	}
	defer queues.stop()
	files, err := startS3(e, tpl, &cfg, data.s3)
	if err != nil {
		return err
	}
	defer func() {
		if err := files.stop(); err != nil {
			fmt.Fprintln(e.Stderr, err)
		}
	}()

	addr := e.Getenv("API_ADDR")
	if addr == "" {
		addr = defaultAPIAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set API_ADDR to use another address): %w", addr, err)
	}
	if cfg.Email.PublicBaseURL == "" {
		// Activation links lead to this API.
		cfg.Email.PublicBaseURL = "http://" + ln.Addr().String()
	}

	// Each function gets an App of its own with the features its main
	// names, as its own process has in AWS. The configuration is the same
	// for all, so the first App tells whether they can be built.
	apiLogger := slog.New(slog.NewJSONHandler(e.Stdout, &slog.HandlerOptions{Level: max(slog.LevelWarn, cfg.LogLevel)}))
	if _, err := app.Load(ctx, cfg, nil); err != nil {
		ln.Close()
		return err
	}
	load := func(features ...app.Feature) *app.App {
		a, err := app.Load(ctx, cfg, features)
		if err != nil {
			panic(err) // app.Load succeeded above with the same configuration
		}
		// The server logs one line per request; the functions' own JSON
		// request logs add only what matters locally: warnings and errors.
		a.API.Logger = apiLogger
		files.localInvoke(a)
		return a
	}
	if err := queues.serve(ctx, load, slog.New(slog.NewTextHandler(e.Stderr, nil)).With("component", "sqs")); err != nil {
		return err
	}
	pollers, err := streamPollers(tpl, streamHandlers(load), client, cfg.TableName, queues.send, slog.New(slog.NewTextHandler(e.Stderr, nil)).With("component", "stream"))
	if err != nil {
		return err
	}
	streamCtx, stopStream := context.WithCancel(ctx)
	streamDone := startStream(streamCtx, e, pollers)
	defer func() {
		stopStream()
		streamDone()
	}()
	if err := files.serve(tpl, load, slog.New(slog.NewTextHandler(e.Stderr, nil)).With("component", "s3")); err != nil {
		return err
	}
	srv, err := newServer(tpl, apiHandlers(load), newAuthorizer(key), log.New(e.Stdout, "api: ", log.Ltime))
	if err != nil {
		return err
	}
	srv.allowOrigins(e.Getenv("ALLOWED_ORIGINS"))

	state := "existing"
	if created {
		state = "created from template.yaml"
	}
	fmt.Fprintf(e.Stdout, "DynamoDB:  %s\n", ddb.Endpoint)
	fmt.Fprintf(e.Stdout, "Table:     %s (%s)\n", cfg.TableName, state)
	fmt.Fprintf(e.Stdout, "API:       http://%s\n", ln.Addr())
	fmt.Fprintf(e.Stdout, "Email:     %s (inbox; sent mail as JSON at %s/store)\n", mail.Endpoint, mail.Endpoint)
	fmt.Fprintf(e.Stdout, "OpenAPI:   http://%s%s\n", ln.Addr(), openAPIPath)
	fmt.Fprintf(e.Stdout, "SQS:       %s (usage events: go run ./infra/local usage --email EMAIL --type sent)\n", queues.endpoint)
	fmt.Fprintf(e.Stdout, "S3:        %s (bucket %s; a CSV uploaded under imports/ or dropped at drop/{accountId}/{name}.csv starts an import)\n", files.srv.URL, files.bucket)
	fmt.Fprintf(e.Stdout, "Data:      %s\n", data)
	fmt.Fprintf(e.Stdout, "Token:     go run ./infra/local token you@example.com\n")
	fmt.Fprintf(e.Stdout, "Ctrl-C stops everything.\n")

	httpSrv := &http.Server{Handler: withOpenAPI(srv), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP API: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(e.Stdout, "stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop HTTP API: %w", err)
	}
	return nil
}

// persistDir is where `run` keeps its data with PERSIST=1, under the
// repository root.
const persistDir = ".local"

// localData says where `run` keeps the table and the files: in memory
// (both "") unless PERSIST=1, then in directories under .local/.
type localData struct{ dynamoDB, s3 string }

// dataDirs reads PERSIST: "1" keeps DynamoDB Local's database and the S3
// store's objects under root's .local/ across restarts; unset (or "0")
// keeps them in memory.
func dataDirs(e *cli.Env, root string) (localData, error) {
	switch v := e.Getenv("PERSIST"); v {
	case "", "0":
		return localData{}, nil
	case "1":
		return localData{dynamoDB: filepath.Join(root, persistDir, "dynamodb"), s3: filepath.Join(root, persistDir, "s3")}, nil
	default:
		return localData{}, fmt.Errorf("PERSIST %q: want 1 (keep the data under %s/) or 0 (in memory, the default)", v, persistDir)
	}
}

func (d localData) String() string {
	if d.dynamoDB == "" {
		return "in memory, gone when run stops (PERSIST=1 keeps it under " + persistDir + "/)"
	}
	return "kept across restarts in " + d.dynamoDB + " and " + d.s3 + " (PERSIST=1; delete them to start afresh)"
}

// AppConfig returns the functions' configuration for the local stack: the
// variables the functions read in AWS, with local defaults for the table,
// the region and DynamoDB Local's address.
func AppConfig(e *cli.Env) (app.Config, error) {
	return app.ConfigFrom(func(name string) string {
		if v := e.Getenv(name); v != "" {
			return v
		}
		switch name {
		case "TABLE_NAME":
			return defaultTable
		case "AWS_REGION":
			return dynamolocal.DefaultRegion
		case "DYNAMODB_ENDPOINT":
			return fmt.Sprintf("http://127.0.0.1:%d", dynamoDBPort)
		case "SENDER_EMAIL":
			return defaultSender
		case "METRICS":
			// CloudWatch EMF lines would drown the local output.
			return "off"
		}
		return ""
	})
}
