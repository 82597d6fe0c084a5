// Command create-import is the Lambda behind POST /v1/imports.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.CreateImport(app.MustLoad(app.WithFiles)))
}
