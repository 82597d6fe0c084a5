// Command bulk-licenses is the Lambda behind POST /v1/licenses/bulk.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.BulkLicenses(app.MustLoad()))
}
