// Command send-reminders is the Lambda that consumes the reminder queue:
// it reminds every pending user of an account a page at a time, and puts
// its job back on the queue to go on in a fresh invocation.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(app.MustLoad(app.WithReminders).Reminders.HandleSQS)
}
