// Command send-activation-emails is the Lambda behind POST /v1/activation-emails.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.SendActivationEmails(app.MustLoad(app.WithReminders)))
}
