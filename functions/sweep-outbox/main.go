// Command sweep-outbox is the Lambda that EventBridge Scheduler runs every
// few minutes: it re-drives the outbox emails that the table stream left
// undelivered, and gives up those past their last attempt (shared/notify).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(app.MustLoad(app.WithOutboxSweeper).Notify.Sweep)
}
