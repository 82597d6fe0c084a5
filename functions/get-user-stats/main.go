// Command get-user-stats is the Lambda behind GET /v1/users/{userId}/stats.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetUserStats(app.MustLoad()))
}
