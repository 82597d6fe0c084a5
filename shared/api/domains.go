package api

import (
	"context"
	"net/http"
	"net/url"

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
		return apigw.Answer(ctx, apigw.NoContent, func() (*licadmin.Domain, error) {
			return nil, a.Domains.Delete(ctx, r.Request, r.Param("domain"))
		})
	}, apigw.Idempotent())
}

// ListDomains serves GET /v1/domains.
func ListDomains(a *app.App) apigw.Handler {
	return a.API.Handle("ListDomains", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var q domains.ListQuery
		var err error
		if q.Limit, err = r.Limit(); err != nil {
			return nil, err
		}
		page, err := apigw.ListPage(ctx, a.Cursors, r, "domains\x00"+r.Email, func(after []byte) ([]*licadmin.Domain, []byte, error) {
			q.After = after
			return a.Domains.List(ctx, r.Request, q)
		})
		if err != nil {
			return nil, err
		}
		return apigw.OK(page)
	})
}
