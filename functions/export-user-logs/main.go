// Command export-user-logs is the Lambda behind POST /v1/users/{userId}/logs/export.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ExportUserLogs(app.MustLoad(app.WithExports)))
}
