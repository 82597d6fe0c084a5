package app

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// A Feature adds to an App a part that only some functions use: one that
// needs another AWS service than DynamoDB, or renders email. A Lambda's
// main names the features its handler uses (MustLoad); a function without
// them does not link their code, which keeps each binary small and quick
// to start. Without its feature, a part fails clearly: imports and exports
// answer that no bucket or queue is configured.
type Feature func(a *App, awsCfg aws.Config)

// WithStream is the table stream's function: the outbox's emails through
// SES, low-pool alerts, the log purge and the pool level metrics. The
// purge hands the export files it deletes to the export function through
// the export queue (EXPORT_QUEUE_URL): linking an S3 client here would make
// this binary, which also renders emails, about 4.6 MB bigger.
func WithStream(a *App, awsCfg aws.Config) {
	wireStream(a)
	a.UseSES(newSESClient(awsCfg, a.Config.Email))
	meterEmail(a)
	useExportQueue(a, awsCfg)
}

// WithOutboxSweeper is the outbox sweeper's function: the emails that the
// stream left undelivered, re-driven through SES (Notify.Sweep).
func WithOutboxSweeper(a *App, awsCfg aws.Config) {
	wireDelivery(a)
	a.UseSES(newSESClient(awsCfg, a.Config.Email))
	meterEmail(a)
}

// WithFiles is the bucket of CSV files through S3, and the import's
// continuation in a fresh invocation of the running function: imports.
func WithFiles(a *App, awsCfg aws.Config) {
	useAWSImportFiles(a, awsCfg)
}

// WithExports is the export queue (SQS) and the files bucket: log exports.
func WithExports(a *App, awsCfg aws.Config) {
	useAWSImportFiles(a, awsCfg)
	useAWSExports(a, awsCfg)
}

// WithReminders is the reminder queue (SQS): bulk activation emails.
func WithReminders(a *App, awsCfg aws.Config) {
	useAWSReminders(a, awsCfg)
}

// Load builds the App of a Lambda function for cfg: the services that
// need DynamoDB only, plus features, with the AWS configuration that
// Lambda gives a function in its environment (lambdaAWS). optFns adjust
// the DynamoDB client.
func Load(_ context.Context, cfg Config, features []Feature, optFns ...func(*dynamodb.Options)) (*App, error) {
	awsCfg, err := lambdaAWS(cfg, os.Getenv)
	if err != nil {
		return nil, err
	}
	a := newCore(cfg, newDynamoDB(awsCfg, cfg, optFns...))
	for _, f := range features {
		f(a, awsCfg)
	}
	return a, nil
}

// wireStream builds the table stream's dispatcher and its handlers.
func wireStream(a *App) {
	wireDelivery(a)
	wirePurge(a)
	meterPoolLevels(a)
}

// lambdaAWS is the AWS configuration of a function in Lambda, read from
// the variables the Lambda runtime sets: the region (AWS_REGION) and the
// execution role's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), which are what the SDK's default chain finds first
// there anyway; AWS_ENDPOINT_URL, the SDK's global endpoint override, is
// honoured too. Not linking the default chain (shared config files, SSO,
// STS, IMDS) makes each binary about 1.8 MB smaller and its start-up
// shorter. With DYNAMODB_ENDPOINT set and no credentials (DynamoDB Local,
// sam local), the local placeholders are used, as New does.
func lambdaAWS(cfg Config, getenv func(string) string) (aws.Config, error) {
	awsCfg := aws.Config{Region: cfg.Region}
	if awsCfg.Region == "" {
		if cfg.DynamoDBEndpoint == "" {
			return aws.Config{}, fmt.Errorf("AWS_REGION is not set (the Lambda runtime sets it)")
		}
		awsCfg.Region = "us-east-1"
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		awsCfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN")))
	case cfg.DynamoDBEndpoint != "":
		// DynamoDB Local accepts any credentials; these are not secrets.
		awsCfg.Credentials = credentials.NewStaticCredentialsProvider("local", "local", "")
	default:
		return aws.Config{}, fmt.Errorf("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (the Lambda runtime sets them from the function's role)")
	}
	if v := getenv("AWS_ENDPOINT_URL"); v != "" {
		awsCfg.BaseEndpoint = aws.String(v)
	}
	return awsCfg, nil
}
