// Command get-license-pool is the Lambda behind GET /v1/licenses.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetLicensePool(app.MustLoad()))
}
