// Command delete-pool-licenses is the Lambda behind DELETE /v1/licenses/{tier}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.DeletePoolLicenses(app.MustLoad()))
}
