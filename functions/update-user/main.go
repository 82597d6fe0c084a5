// Command update-user is the Lambda behind PATCH /v1/users/{userId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.UpdateUser(app.MustLoad()))
}
