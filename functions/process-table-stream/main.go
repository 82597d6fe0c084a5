// Command process-table-stream is the Lambda on the table's DynamoDB
// stream: it delivers outbox emails and low-pool alerts, and runs whatever
// else is registered on the stream dispatcher (shared/app).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(app.MustLoad(app.WithStream).Stream.Handle)
}
