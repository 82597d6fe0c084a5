// Command transfer-license is the Lambda behind POST /v1/users/{userId}/license/transfer.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.TransferLicense(app.MustLoad()))
}
