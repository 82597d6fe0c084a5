// Command assign-license is the Lambda behind POST /v1/users/{userId}/license.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.AssignLicense(app.MustLoad()))
}
