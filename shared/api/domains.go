package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/domains"
	"licenseadmin/shared/licadmin"
)

// CreateDomain serves POST /v1/domains: 201 with the TXT record value to
// publish for a new request, 200 with the entry as it is when the account
// already has the domain.
func CreateDomain(a *app.App) apigw.Handler {
	return a.API.Handle("CreateDomain", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var b struct {
			Domain *string `json:"domain"`
		}
		if err := r.Decode(&b); err != nil {
			return nil, err
		}
		if b.Domain == nil {
			return nil, licadmin.Invalid("domain", "required", "domain is required, such as example.com")
		}
		created := func(d *licadmin.Domain) *apigw.Response {
			return &apigw.Response{Status: http.StatusCreated, Body: d, Headers: map[string]string{
				"Location": "/v1/domains/" + url.PathEscape(d.Domain),
			}}
		}
		apigw.Render(ctx, created)
		d, isNew, err := a.Domains.Request(ctx, r.Request, *b.Domain)
		if err != nil {
			return nil, err
		}
		if !isNew {
			return apigw.OK(d)
		}
		return created(d), nil
	}, apigw.Idempotent())
}

// VerifyDomain serves POST /v1/domains/{domain}/verify.
func VerifyDomain(a *app.App) apigw.Handler {
	return a.API.Handle("VerifyDomain", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		d, err := a.Domains.Verify(ctx, r.Request, r.Param("domain"))
		if err != nil {
			return nil, err
		}
		return apigw.OK(d)
	}, apigw.Idempotent())
}

// DeleteDomain serves DELETE /v1/domains/{domain}: 204 No Content.
func DeleteDomain(a *app.App) apigw.Handler {
	return a.API.Handle("DeleteDomain", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		noContent := func(*licadmin.Domain) *apigw.Response { return &apigw.Response{Status: http.StatusNoContent} }
		apigw.Render(ctx, noContent)
		if err := a.Domains.Delete(ctx, r.Request, r.Param("domain")); err != nil {
			return nil, err
		}
		return noContent(nil), nil
	}, apigw.Idempotent())
}

// ListDomains serves GET /v1/domains.
func ListDomains(a *app.App) apigw.Handler {
	return a.API.Handle("ListDomains", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var q domains.ListQuery
		if v, ok := r.Query["limit"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, licadmin.Invalid("limit", "out_of_range", "limit must be from 1 to 200")
			}
			q.Limit = n
		}
		scope := "domains\x00" + r.Email
		after, err := a.Cursors.Decode(ctx, scope, r.Query["cursor"])
		if err != nil {
			return nil, err
		}
		q.After = after
		ds, next, err := a.Domains.List(ctx, r.Request, q)
		if err != nil {
			return nil, err
		}
		page := apigw.Page[*licadmin.Domain]{Items: ds}
		if page.Items == nil {
			page.Items = []*licadmin.Domain{}
		}
		if page.NextCursor, err = a.Cursors.Encode(ctx, scope, next); err != nil {
			return nil, err
		}
		return apigw.OK(page)
	})
}
