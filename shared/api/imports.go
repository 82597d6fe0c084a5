package api

import (
	"bytes"
	"context"
	"net/http"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
)

// GetImportTemplate serves GET /v1/imports/template: the CSV template.
func GetImportTemplate(a *app.App) apigw.Handler {
	return a.API.Handle("GetImportTemplate", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		b, err := a.Imports.Template(ctx, r.Request)
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Raw: b, Headers: map[string]string{
			"Content-Type":        "text/csv; charset=utf-8",
			"Content-Disposition": `attachment; filename="users-import-template.csv"`,
		}}, nil
	})
}

// CreateImport serves POST /v1/imports {"dryRun":bool} (an empty body is
// {"dryRun":false}): 201 with the presigned upload.
func CreateImport(a *app.App) apigw.Handler {
	return a.API.Handle("CreateImport", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var in struct {
			DryRun bool `json:"dryRun"`
		}
		if len(bytes.TrimSpace(r.Body)) > 0 {
			if err := r.Decode(&in); err != nil {
				return nil, err
			}
		}
		created := func(up *importer.Upload) *apigw.Response {
			return &apigw.Response{Status: http.StatusCreated, Body: up, Headers: map[string]string{
				"Location":      "/v1/imports/" + up.ImportID,
				"Cache-Control": "no-store", // the URL is a credential until it expires
			}}
		}
		return apigw.Answer(ctx, created, func() (*importer.Upload, error) {
			return a.Imports.Create(ctx, r.Request, in.DryRun)
		})
	}, apigw.Idempotent())
}

// GetImport serves GET /v1/imports/{importId}: the import's status and
// counters, and its report's URL once it has ended.
func GetImport(a *app.App) apigw.Handler {
	return a.API.Handle("GetImport", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		imp, err := a.Imports.Get(ctx, r.Request, r.Param("importId"))
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Body: imp, Headers: noStore}, nil
	})
}

// ListImports serves GET /v1/imports?limit=&cursor=: the account's
// imports, newest first, uploaded and dropped alike ("source"), each with
// its report's URL once ended.
func ListImports(a *app.App) apigw.Handler {
	return a.API.Handle("ListImports", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		limit, err := r.Limit()
		if err != nil {
			return nil, err
		}
		page, err := apigw.ListPage(ctx, a.Cursors, r, "imports\x00"+r.Email, func(after []byte) ([]*licadmin.Import, []byte, error) {
			return a.Imports.List(ctx, r.Request, limit, after)
		})
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Body: page, Headers: noStore}, nil
	})
}
