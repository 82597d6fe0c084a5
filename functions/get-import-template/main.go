// Command get-import-template is the Lambda behind GET /v1/imports/template.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetImportTemplate(app.MustLoad()))
}
