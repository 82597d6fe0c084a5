package app

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
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
// SES, low-pool alerts, the log purge and the pool level metrics.
func WithStream(a *App, awsCfg aws.Config) {
	wireStream(a)
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

// Load builds the App for cfg with the services that need DynamoDB only,
// plus features. optFns adjust the DynamoDB client.
func Load(ctx context.Context, cfg Config, features []Feature, optFns ...func(*dynamodb.Options)) (*App, error) {
	awsCfg, db, err := loadAWS(ctx, cfg, optFns...)
	if err != nil {
		return nil, err
	}
	a := newCore(cfg, db)
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
