// Command get-activation-emails is the Lambda behind GET /v1/activation-emails/{reminderId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetActivationEmails(app.MustLoad()))
}
