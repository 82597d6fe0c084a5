// Command get-import is the Lambda behind GET /v1/imports/{importId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetImport(app.MustLoad(app.WithFiles)))
}
