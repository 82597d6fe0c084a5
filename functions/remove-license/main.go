// Command remove-license is the Lambda behind DELETE /v1/users/{userId}/license.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.RemoveLicense(app.MustLoad()))
}
