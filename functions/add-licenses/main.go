// Command add-licenses is the operator Lambda (no HTTP route, invoked with
// IAM) that adds purchased licenses to a pool, once per order id.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
	"licenseadmin/shared/operator"
)

func main() {
	lambda.Start(operator.AddLicensesHandler(app.MustLoad().Operator))
}
