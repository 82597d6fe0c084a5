package stack

import (
	"licenseadmin/shared/app"
	"licenseadmin/shared/importer"
)

// s3Handlers is the registry of the local S3's notifications: the Lambda
// handler of every template function that has S3 events, keyed by its
// logical id and built exactly as that function's main builds it
// (app.MustLoad is load). `run` refuses to start when one is missing.
func s3Handlers(load loader) map[string]any {
	return map[string]any{
		"ImportUsersFunction": importer.Handler(load(app.WithFiles).Imports),
	}
}
