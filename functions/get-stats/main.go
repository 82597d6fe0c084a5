// Command get-stats is the Lambda behind GET /v1/stats.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetStats(app.MustLoad()))
}
