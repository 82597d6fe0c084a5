// Command import-users is the Lambda that imports the users of a CSV file
// uploaded under imports/ (the bucket's ObjectCreated event), and continues
// a large import from its checkpoint when it invokes itself.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/app"
	"licenseadmin/shared/importer"
)

func main() {
	lambda.Start(importer.Handler(app.MustLoad(app.WithFiles).Imports))
}
