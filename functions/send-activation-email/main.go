// Command send-activation-email is the Lambda behind POST /v1/users/{userId}/activation-email.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.SendActivationEmail(app.MustLoad()))
}
