package api

import (
	"context"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/license"
)

// BulkLicenses serves POST /v1/licenses/bulk.
func BulkLicenses(a *app.App) apigw.Handler {
	return a.API.Handle("BulkLicenses", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var in license.BulkChange
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		out, err := a.Licenses.Bulk(ctx, r.Request, in)
		if err != nil {
			return nil, err
		}
		return apigw.OK(out)
	}, apigw.Idempotent())
}
