// Command list-domains is the Lambda behind GET /v1/domains.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ListDomains(app.MustLoad()))
}
