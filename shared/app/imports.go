package app

import (
	"context"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/s3files"
	"licenseadmin/shared/selfinvoke"
	"licenseadmin/shared/store"
)

// wireImports builds the bulk import service of a, without its bucket: New
// gives it the S3 files and the self invocation (UseImportFiles); tests and
// the local stack give it theirs.
func wireImports(a *App, st *store.Store, now licadmin.Clock, newID licadmin.IDSource, webmail licadmin.Webmail) {
	a.Imports = &importer.Service{
		Store:   st,
		Bucket:  a.Config.S3.Bucket,
		Webmail: webmail,
		Now:     now,
		NewID:   newID,
		Logger:  a.Logger,
	}
}

// UseImportFiles gives the import service the bucket of Config.S3 through
// client, and the invoker that continues an import in a fresh invocation.
func (a *App) UseImportFiles(client *s3.Client, invoker importer.Invoker) {
	a.Files = s3files.New(client, a.Config.S3.Bucket)
	a.Imports.Files = a.Files
	a.Imports.Bucket = a.Config.S3.Bucket
	a.Imports.Invoker = invoker
	a.Imports.Logger = a.Logger
}

// useAWSImportFiles wires imports in AWS: S3 (or S3_ENDPOINT's store) and
// the asynchronous invocation of the running function itself, whose name
// the Lambda runtime sets.
func useAWSImportFiles(a *App, awsCfg aws.Config) {
	self := &selfinvoke.Invoker{Client: lambda.NewFromConfig(awsCfg), FunctionName: os.Getenv("AWS_LAMBDA_FUNCTION_NAME")}
	a.UseImportFiles(s3.NewFromConfig(awsCfg, s3files.Options(a.Config.S3.Endpoint)),
		importer.InvokeFunc(func(ctx context.Context, ev importer.Event) error { return self.Invoke(ctx, ev) }))
}
