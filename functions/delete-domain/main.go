// Command delete-domain is the Lambda behind DELETE /v1/domains/{domain}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.DeleteDomain(app.MustLoad()))
}
