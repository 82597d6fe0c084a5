// Command set-alert-threshold is the Lambda behind PATCH /v1/licenses/{tier}: a tier's low-pool alert threshold.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.SetAlertThreshold(app.MustLoad()))
}
