// Command activation-page is the Lambda behind GET /activate (public): the activation page, which changes nothing.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ActivationPage(app.MustLoad()))
}
