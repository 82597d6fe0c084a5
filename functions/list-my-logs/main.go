// Command list-my-logs is the Lambda behind GET /v1/me/logs.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ListMyLogs(app.MustLoad()))
}
