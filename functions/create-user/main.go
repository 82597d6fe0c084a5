// Command create-user is the Lambda behind POST /v1/users.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.CreateUser(app.MustLoad()))
}
