// Command activate is the Lambda behind POST /v1/activations (public): consumes an activation token.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.Activate(app.MustLoad()))
}
