// Command list-imports is the Lambda behind GET /v1/imports.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ListImports(app.MustLoad(app.WithFiles)))
}
