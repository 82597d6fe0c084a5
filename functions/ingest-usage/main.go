// Command ingest-usage is the Lambda that consumes the usage queue: usage events become log entries and monthly counters.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(app.MustLoad().Usage.HandleSQS)
}
