// Command create-account is the operator Lambda (no HTTP route, invoked with
// IAM) that creates an account and its first admin.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
	"licenseadmin/shared/operator"
)

func main() {
	lambda.Start(operator.CreateAccountHandler(app.MustLoad().Operator))
}
