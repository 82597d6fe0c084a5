// Command approve-domain is the operator Lambda (no HTTP route, invoked with
// IAM) that approves an email domain for an account without DNS proof.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
	"licenseadmin/shared/operator"
)

func main() {
	lambda.Start(operator.ApproveDomainHandler(app.MustLoad().Operator))
}
