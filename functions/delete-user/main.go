// Command delete-user is the Lambda behind DELETE /v1/users/{userId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/api"
	"licenseadmin/shared/app"
)

func main() {
	lambda.Start(api.DeleteUser(app.MustLoad()))
}
