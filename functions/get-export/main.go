// Command get-export is the Lambda behind GET /v1/exports/{exportId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.GetExport(app.MustLoad(app.WithExports)))
}
