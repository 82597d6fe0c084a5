// Package app wires License Admin once per cold start: it reads the
// configuration from the environment, builds the AWS clients and the
// services, and hands them to the function's handler. Every Lambda's main
// and the local stack build their dependencies here, the same way.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/oklog/ulid/v2"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/license"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/store"
	"licenseadmin/shared/user"
)

// Config is the runtime configuration, read from the environment.
type Config struct {
	// TableName is the DynamoDB table (TABLE_NAME, required).
	TableName string
	// DynamoDBEndpoint overrides the DynamoDB endpoint (DYNAMODB_ENDPOINT),
	// for DynamoDB Local; empty in AWS.
	DynamoDBEndpoint string
	// Region is the AWS region (AWS_REGION); the SDK's default chain applies
	// when empty.
	Region string
	// LogLevel is LOG_LEVEL: DEBUG, INFO (default), WARN or ERROR.
	LogLevel slog.Level
	// WebmailDomains replaces the default public webmail list when
	// PUBLIC_EMAIL_DOMAINS (comma-separated) is set.
	WebmailDomains []string
}

// ConfigFromEnv reads Config from the process environment.
func ConfigFromEnv() (Config, error) { return ConfigFrom(os.Getenv) }

// ConfigFrom reads Config from the variables getenv returns; the local
// stack passes its own defaults this way.
func ConfigFrom(getenv func(string) string) (Config, error) {
	c := Config{
		TableName:        getenv("TABLE_NAME"),
		DynamoDBEndpoint: getenv("DYNAMODB_ENDPOINT"),
		Region:           getenv("AWS_REGION"),
		WebmailDomains:   licadmin.DefaultWebmailDomains,
	}
	if c.TableName == "" {
		return c, fmt.Errorf("TABLE_NAME is not set: set it to the DynamoDB table's name")
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("LOG_LEVEL %q: use DEBUG, INFO, WARN or ERROR", v)
		}
	}
	if v := getenv("PUBLIC_EMAIL_DOMAINS"); v != "" {
		c.WebmailDomains = strings.Split(v, ",")
	}
	return c, nil
}

// App holds a function's dependencies.
type App struct {
	Config   Config
	Logger   *slog.Logger
	DynamoDB *dynamodb.Client
	Store    *store.Store
	API      *apigw.Server
	Cursors  *apigw.Cursors
	Licenses *license.Service
	Users    *user.Service
	Operator *operator.Service
}

// New builds the dependencies for cfg. optFns adjust the DynamoDB client
// (tests add fault-injecting middleware with them).
func New(ctx context.Context, cfg Config, optFns ...func(*dynamodb.Options)) (*App, error) {
	var loadOpts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	if cfg.DynamoDBEndpoint != "" {
		if cfg.Region == "" {
			loadOpts = append(loadOpts, config.WithRegion("us-east-1"))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			// DynamoDB Local accepts any credentials; these are not secrets.
			loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	db := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if cfg.DynamoDBEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.DynamoDBEndpoint)
			// DynamoDB Local's CRC32 headers do not always match its
			// (re-encoded) bodies; AWS's do. Skip the check locally only.
			o.DisableValidateResponseChecksum = true
		}
		DynamoDBRetries(o)
		for _, fn := range optFns {
			fn(o)
		}
	})
	return NewWithClient(cfg, db), nil
}

// DynamoDBRetries sets how the DynamoDB client retries throttling and
// transient errors: with full jitter, at most 4 attempts and 1 s between
// them, so that a request fits in an API call's time instead of waiting up
// to the SDK default's 20 s; and without the client-side retry quota, which
// in a Lambda (one request at a time) only turns bursts into failures.
// Transactions cancelled by conflicts are retried by the store itself.
func DynamoDBRetries(o *dynamodb.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = 4
		so.MaxBackoff = time.Second
		so.RateLimiter = ratelimit.None
	})
}

// NewWithClient builds the dependencies over an existing DynamoDB client.
func NewWithClient(cfg Config, db *dynamodb.Client) *App {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	now := func() time.Time { return time.Now().UTC() }
	newID := func() string { return ulid.Make().String() }
	webmail := licadmin.NewWebmail(cfg.WebmailDomains)
	st := &store.Store{DB: db, Table: cfg.TableName, NewID: newID}
	return &App{
		Config:   cfg,
		Logger:   logger,
		DynamoDB: db,
		Store:    st,
		API:      &apigw.Server{Logger: logger, Idempotency: st, Now: now},
		Cursors:  &apigw.Cursors{Keys: st},
		Licenses: &license.Service{Store: st, Now: now},
		Users:    &user.Service{Store: st, Now: now, NewID: newID, Webmail: webmail},
		Operator: &operator.Service{Store: st, Now: now, NewID: newID, Webmail: webmail},
	}
}

// MustLoad builds the App from the environment for a Lambda's main, or
// logs why it cannot and exits: a function without its configuration must
// fail its cold start loudly rather than answer wrongly.
func MustLoad() *App {
	cfg, err := ConfigFromEnv()
	if err == nil {
		var a *App
		if a, err = New(context.Background(), cfg); err == nil {
			return a
		}
	}
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("cannot start", "err", err.Error())
	os.Exit(1)
	return nil
}
