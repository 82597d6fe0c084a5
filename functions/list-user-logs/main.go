// Command list-user-logs is the Lambda behind GET /v1/users/{userId}/logs.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ListUserLogs(app.MustLoad()))
}
