// Command verify-domain is the Lambda behind POST /v1/domains/{domain}/verify.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.VerifyDomain(app.MustLoad()))
}
