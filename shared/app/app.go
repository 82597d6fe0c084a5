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

	"licenseadmin/shared/activation"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/callercache"
	"licenseadmin/shared/dnstxt"
	"licenseadmin/shared/domains"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/license"
	"licenseadmin/shared/localauth"
	"licenseadmin/shared/logs"
	"licenseadmin/shared/metrics"
	"licenseadmin/shared/notify"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/s3files"
	"licenseadmin/shared/stats"
	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
	"licenseadmin/shared/usage"
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
	// Email configures activation links and emails (PUBLIC_BASE_URL,
	// SENDER_EMAIL, SES_CONFIGURATION_SET, SES_ENDPOINT, ACTIVATION_TTL).
	Email EmailConfig
	// Queues locates the SQS queues (SQS_ENDPOINT, EXPORT_QUEUE_URL) and
	// S3 the bucket of CSV files (S3_ENDPOINT, BUCKET_NAME): see usage.go.
	Queues QueueConfig
	S3     S3Config
	// DNSResolver is the name server (host:port) that domain verification
	// asks for TXT records (DNS_RESOLVER); empty means the system's.
	DNSResolver string
	// Metrics turns on CloudWatch metrics (EMF lines on stdout): on unless
	// METRICS=off; the local stack and the tests leave it off.
	Metrics bool
	// DNSTimeout bounds one TXT lookup (DNS_TIMEOUT, a Go duration such as
	// "3s"); dnstxt.DefaultTimeout when zero.
	DNSTimeout time.Duration
	// TrustUnverifiedEmail (TRUST_UNVERIFIED_EMAIL=true) accepts tokens
	// without email_verified, for identity providers that verify every
	// address and do not send the claim; false by default.
	TrustUnverifiedEmail bool
	// SAMLocalAuth verifies bearer tokens in the function itself, only when
	// SAM CLI runs it (AWS_SAM_LOCAL=true) and the env file names the
	// local stack's public key (LOCAL_JWT_PUBLIC_KEY): nil in AWS, where
	// the API Gateway JWT authorizer does it (localauth.FromEnv).
	SAMLocalAuth *localauth.Authorizer
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
		DNSResolver:      getenv("DNS_RESOLVER"),
		Metrics:          getenv("METRICS") != "off",
	}
	switch v := getenv("TRUST_UNVERIFIED_EMAIL"); v {
	case "", "false":
	case "true":
		c.TrustUnverifiedEmail = true
	default:
		return c, fmt.Errorf("TRUST_UNVERIFIED_EMAIL %q: use true or false", v)
	}
	if c.TableName == "" {
		return c, fmt.Errorf("TABLE_NAME is not set: set it to the DynamoDB table's name")
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("LOG_LEVEL %q: use DEBUG, INFO, WARN or ERROR", v)
		}
	}
	auth, err := localauth.FromEnv(getenv)
	if err != nil {
		return c, err
	}
	c.SAMLocalAuth = auth
	if v := getenv("PUBLIC_EMAIL_DOMAINS"); v != "" {
		c.WebmailDomains = strings.Split(v, ",")
	}
	if err := c.Email.readEmail(getenv); err != nil {
		return c, err
	}
	if err := c.Queues.readQueues(getenv); err != nil {
		return c, err
	}
	if err := c.S3.readS3(getenv); err != nil {
		return c, err
	}
	if v := getenv("DNS_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("DNS_TIMEOUT %q: use a positive duration such as 3s", v)
		}
		c.DNSTimeout = d
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
	// Activation, Notify and Stream: activation links, the outbox's email
	// delivery, and the table stream's dispatcher (shared/app/email.go).
	Activation *activation.Service
	// Reminders sends activation emails in bulk (POST
	// /v1/activation-emails); its queue comes from WithReminders.
	Reminders *activation.Reminders
	Notify    *notify.Service
	Stream    *stream.Dispatcher
	Domains   *domains.Service
	// Usage ingestion, logs, exports, statistics and the log purge
	// (shared/app/usage.go).
	Usage *usage.Ingester
	// UsageRecorder adds ingested events to the monthly counters, from
	// the table's stream (the record-usage function).
	UsageRecorder *usage.Recorder
	Logs          *logs.Service
	Exports       *logs.Exports
	Stats         *stats.Service
	Purger        *logs.Purger
	// Metrics writes CloudWatch EMF metrics to stdout; nil when
	// Config.Metrics is off (shared/app/metrics.go).
	Metrics *metrics.Emitter
	// Imports runs bulk imports of users from CSV files in S3
	// (shared/app/imports.go).
	Imports *importer.Service
	// Files is the files bucket (imports, reports, exports); nil until
	// UseImportFiles.
	Files *s3files.Files

	// now and newID are the services' clock and ids, for the features
	// added after them.
	now   licadmin.Clock
	newID licadmin.IDSource
}

// New builds the dependencies for cfg: every service, with the table
// stream's handlers and the AWS clients of every feature (the local stack
// and the tests use it; a Lambda's main uses MustLoad with the features it
// needs). optFns adjust the DynamoDB client (tests add fault-injecting
// middleware with them).
func New(ctx context.Context, cfg Config, optFns ...func(*dynamodb.Options)) (*App, error) {
	awsCfg, db, err := loadAWS(ctx, cfg, optFns...)
	if err != nil {
		return nil, err
	}
	a := NewWithClient(cfg, db)
	a.UseSES(newSESClient(awsCfg, cfg.Email))
	useAWSImportFiles(a, awsCfg)
	useAWSExports(a, awsCfg)
	useAWSReminders(a, awsCfg)
	meterEmail(a)
	return a, nil
}

// loadAWS loads the AWS configuration for cfg and builds the DynamoDB
// client, adjusted by optFns.
func loadAWS(ctx context.Context, cfg Config, optFns ...func(*dynamodb.Options)) (aws.Config, *dynamodb.Client, error) {
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
		return aws.Config{}, nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return awsCfg, newDynamoDB(awsCfg, cfg, optFns...), nil
}

// newDynamoDB builds the DynamoDB client for cfg, adjusted by optFns.
func newDynamoDB(awsCfg aws.Config, cfg Config, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
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

// NewWithClient builds the dependencies over an existing DynamoDB client:
// every service and the table stream's handlers; no other AWS client (New
// adds them).
func NewWithClient(cfg Config, db *dynamodb.Client) *App {
	a := newCore(cfg, db)
	wireStream(a)
	return a
}

// newCore builds the services that need DynamoDB only, without the table
// stream's handlers: what every function has (shared/app/features.go).
func newCore(cfg Config, db *dynamodb.Client) *App {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	now := func() time.Time { return time.Now().UTC() }
	newID := func() string { return ulid.Make().String() }
	webmail := licadmin.NewWebmail(cfg.WebmailDomains)
	st := &store.Store{DB: store.Operations(db), Table: cfg.TableName, NewID: newID}
	// Admins just checked, for the user list of this function instance:
	// its early page read (user.Service.Callers).
	callers := callercache.New(callercache.DefaultTTL, callercache.DefaultMax)
	a := &App{
		now:      now,
		newID:    newID,
		Config:   cfg,
		Logger:   logger,
		DynamoDB: db,
		Store:    st,
		API:      &apigw.Server{Logger: logger, Idempotency: st, Callers: st, Now: now, TrustUnverifiedEmail: cfg.TrustUnverifiedEmail, SAMLocal: cfg.SAMLocalAuth},
		Cursors:  &apigw.Cursors{Keys: st},
		Licenses: &license.Service{Store: st, Now: now},
		Users:    &user.Service{Store: st, Now: now, NewID: newID, Webmail: webmail, Callers: callers},
		Operator: &operator.Service{Store: st, Now: now, NewID: newID, Webmail: webmail},
		Domains: &domains.Service{Store: st, Now: now, Webmail: webmail,
			TXT: &dnstxt.Resolver{Server: cfg.DNSResolver, Timeout: cfg.DNSTimeout}},
	}
	wireEmail(a, st, now)
	wireUsage(a, st, now, newID)
	wireImports(a, st, now, newID, webmail)
	wireMetrics(a)
	return a
}

// MustLoad builds the App from the environment for a Lambda's main, with
// the services that need DynamoDB only plus features (see Feature), or
// logs why it cannot and exits: a function without its configuration must
// fail its cold start loudly rather than answer wrongly.
func MustLoad(features ...Feature) *App {
	cfg, err := ConfigFromEnv()
	if err == nil {
		var a *App
		if a, err = Load(context.Background(), cfg, features); err == nil {
			return a
		}
	}
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("cannot start", "err", err.Error())
	os.Exit(1)
	return nil
}
