package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"licenseadmin"
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

// shutdownTimeout bounds how long in-flight requests may finish on Ctrl-C.
const shutdownTimeout = 5 * time.Second

// runCmd runs the local system in the foreground until ctx ends (Ctrl-C):
// DynamoDB Local with the template's table, the SES emulator, the table's
// stream handed to the stream function (outbox emails), and the HTTP API.
func runCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"run takes no arguments"}
	}
	root, err := dynamolocal.ModuleRoot(e.dir)
	if err != nil {
		return err
	}
	key, err := loadOrCreateKey(root)
	if err != nil {
		return err
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return err
	}
	cfg, err := appConfig(e)
	if err != nil {
		return err
	}

	ddbPort, err := port(e, "DYNAMODB_PORT", dynamoDBPort)
	if err != nil {
		return err
	}
	ddb, err := dynamolocal.Start(ctx, dynamolocal.Options{Port: ddbPort, Dir: root})
	if err != nil {
		return err
	}
	defer func() {
		if err := ddb.Stop(); err != nil {
			fmt.Fprintln(e.stderr, err)
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
			fmt.Fprintln(e.stderr, err)
		}
	}()

	queues, err := listenQueues(e, tpl, &cfg)
	if err != nil {
		return err
	}
	defer queues.stop()
	files, err := startS3(e, tpl, &cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := files.stop(); err != nil {
			fmt.Fprintln(e.stderr, err)
		}
	}()

	addr := e.getenv("API_ADDR")
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

	a, err := app.New(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	streamCtx, stopStream := context.WithCancel(ctx)
	streamDone := startStream(streamCtx, e, a, client)
	defer func() {
		stopStream()
		streamDone()
	}()
	if err := queues.serve(ctx, a, slog.New(slog.NewTextHandler(e.stderr, nil)).With("component", "sqs")); err != nil {
		return err
	}
	if err := files.serve(a, slog.New(slog.NewTextHandler(e.stderr, nil)).With("component", "s3")); err != nil {
		return err
	}
	// The server logs one line per request; the functions' own JSON request
	// logs add only what matters locally: warnings and errors.
	a.API.Logger = slog.New(slog.NewJSONHandler(e.stdout, &slog.HandlerOptions{Level: max(slog.LevelWarn, cfg.LogLevel)}))
	srv, err := newServer(tpl, apiHandlers(a), newAuthorizer(key), log.New(e.stdout, "api: ", log.Ltime))
	if err != nil {
		return err
	}
	srv.allowOrigins(e.getenv("ALLOWED_ORIGINS"))

	state := "existing"
	if created {
		state = "created from template.yaml"
	}
	fmt.Fprintf(e.stdout, "DynamoDB:  %s\n", ddb.Endpoint)
	fmt.Fprintf(e.stdout, "Table:     %s (%s)\n", cfg.TableName, state)
	fmt.Fprintf(e.stdout, "API:       http://%s\n", ln.Addr())
	fmt.Fprintf(e.stdout, "Email:     %s (inbox; sent mail as JSON at %s/store)\n", mail.Endpoint, mail.Endpoint)
	fmt.Fprintf(e.stdout, "OpenAPI:   http://%s%s\n", ln.Addr(), openAPIPath)
	fmt.Fprintf(e.stdout, "SQS:       %s (usage events: go run ./infra/local usage --email EMAIL --type sent)\n", queues.endpoint)
	fmt.Fprintf(e.stdout, "S3:        %s (bucket %s; a CSV uploaded under imports/ or dropped at drop/{accountId}/{name}.csv starts an import)\n", files.srv.URL, files.bucket)
	fmt.Fprintf(e.stdout, "Token:     go run ./infra/local token you@example.com\n")
	fmt.Fprintf(e.stdout, "Ctrl-C stops everything.\n")

	httpSrv := &http.Server{Handler: withOpenAPI(srv), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP API: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(e.stdout, "stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop HTTP API: %w", err)
	}
	return nil
}

// appConfig returns the functions' configuration for the local stack: the
// variables the functions read in AWS, with local defaults for the table,
// the region and DynamoDB Local's address.
func appConfig(e *env) (app.Config, error) {
	return app.ConfigFrom(func(name string) string {
		if v := e.getenv(name); v != "" {
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
