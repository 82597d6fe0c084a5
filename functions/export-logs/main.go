// Command export-logs is the Lambda that consumes the export queue: it writes a user's log entries as CSV to S3.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(app.MustLoad(app.WithExports).Exports.HandleSQS)
}
