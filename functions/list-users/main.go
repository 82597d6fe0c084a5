// Command list-users is the Lambda behind GET /v1/users.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.ListUsers(app.MustLoad()))
}
