// Command export-my-logs is the Lambda behind POST /v1/me/logs/export.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ExportMyLogs(app.MustLoad(app.WithExports)))
}
