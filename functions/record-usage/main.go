// Command record-usage is the Lambda that puts the log entries and keeps the monthly usage counters: the table's stream delivers it the usage event claims the ingestion wrote.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(app.MustLoad().UsageRecorder.HandleStream)
}
