// Package api holds one handler constructor per HTTP function: each decodes
// its route's input, calls a service, and returns the result. Everything
// shared (identity, errors, idempotency, logging) is in package apigw.
package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/user"
)

// noStore keeps out of caches the answers that hold a credential (an
// activation token's outcome, a presigned URL) or a job's progress, which
// a cached copy would show stale.
var noStore = map[string]string{"Cache-Control": "no-store"}

type tierBody struct {
	Tier *string `json:"tier"`
}

// decodeTier reads {"tier": "..."} from the body.
func decodeTier(r *apigw.Request) (licadmin.Tier, error) {
	var b tierBody
	if err := r.Decode(&b); err != nil {
		return "", err
	}
	if b.Tier == nil {
		return "", licadmin.Invalid("tier", "required", "tier is required: eco, advanced or pro")
	}
	return licadmin.ParseTier("tier", *b.Tier)
}

// GetLicensePool serves GET /v1/licenses.
func GetLicensePool(a *app.App) apigw.Handler {
	return a.API.Handle("GetLicensePool", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		p, err := a.Licenses.Pool(ctx, r.Request)
		if err != nil {
			return nil, err
		}
		return apigw.OK(p)
	})
}

// AssignLicense serves POST /v1/users/{userId}/license.
func AssignLicense(a *app.App) apigw.Handler {
	return a.API.Handle("AssignLicense", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		tier, err := decodeTier(r)
		if err != nil {
			return nil, err
		}
		u, err := a.Licenses.Assign(ctx, r.Request, r.Param("userId"), tier)
		if err != nil {
			return nil, err
		}
		return apigw.OK(u)
	}, apigw.Idempotent())
}

// ModifyLicense serves PATCH /v1/users/{userId}/license.
func ModifyLicense(a *app.App) apigw.Handler {
	return a.API.Handle("ModifyLicense", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		tier, err := decodeTier(r)
		if err != nil {
			return nil, err
		}
		u, err := a.Licenses.Modify(ctx, r.Request, r.Param("userId"), tier)
		if err != nil {
			return nil, err
		}
		return apigw.OK(u)
	}, apigw.Idempotent())
}

// RemoveLicense serves DELETE /v1/users/{userId}/license.
func RemoveLicense(a *app.App) apigw.Handler {
	return a.API.Handle("RemoveLicense", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		u, err := a.Licenses.Remove(ctx, r.Request, r.Param("userId"))
		if err != nil {
			return nil, err
		}
		return apigw.OK(u)
	}, apigw.Idempotent())
}

// TransferLicense serves POST /v1/users/{userId}/license/transfer.
func TransferLicense(a *app.App) apigw.Handler {
	return a.API.Handle("TransferLicense", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var b struct {
			ToUserID *string `json:"toUserId"`
		}
		if err := r.Decode(&b); err != nil {
			return nil, err
		}
		if b.ToUserID == nil || *b.ToUserID == "" {
			return nil, licadmin.Invalid("toUserId", "required", "toUserId is required")
		}
		u, err := a.Licenses.Transfer(ctx, r.Request, r.Param("userId"), *b.ToUserID)
		if err != nil {
			return nil, err
		}
		return apigw.OK(u)
	}, apigw.Idempotent())
}

// DeletePoolLicenses serves DELETE /v1/licenses/{tier}?quantity=N.
func DeletePoolLicenses(a *app.App) apigw.Handler {
	return a.API.Handle("DeletePoolLicenses", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		tier, err := licadmin.ParseTier("tier", r.Param("tier"))
		if err != nil {
			return nil, licadmin.Errorf(licadmin.ENOTFOUND, "no tier %q: use eco, advanced or pro", r.Param("tier"))
		}
		q, err := strconv.ParseInt(r.Query["quantity"], 10, 64)
		if err != nil {
			return nil, licadmin.Invalid("quantity", "required", "quantity must be a whole number from 1 to 1000000")
		}
		p, err := a.Licenses.DeleteFromPool(ctx, r.Request, tier, q)
		if err != nil {
			return nil, err
		}
		return apigw.OK(p)
	}, apigw.Idempotent())
}

// CreateUser serves POST /v1/users.
func CreateUser(a *app.App) apigw.Handler {
	return a.API.Handle("CreateUser", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var in user.NewUser
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		created := func(u *licadmin.User) *apigw.Response {
			return &apigw.Response{Status: http.StatusCreated, Body: u, Headers: map[string]string{
				"Location": "/v1/users/" + u.ID,
				"ETag":     etag(u),
			}}
		}
		return apigw.Answer(ctx, created, func() (*licadmin.User, error) {
			return a.Users.Create(ctx, r.Request, in)
		})
	}, apigw.Idempotent())
}

// GetUser serves GET /v1/users/{userId}.
func GetUser(a *app.App) apigw.Handler {
	return a.API.Handle("GetUser", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		u, err := a.Users.Get(ctx, r.Request, r.Param("userId"))
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Body: u, Headers: map[string]string{"ETag": etag(u)}}, nil
	})
}

// etag is the user's version as a strong entity tag; PATCH compares it
// with If-Match.
func etag(u *licadmin.User) string { return `"` + strconv.FormatInt(u.Version, 10) + `"` }

// ListUsers serves GET /v1/users.
func ListUsers(a *app.App) apigw.Handler {
	return a.API.Handle("ListUsers", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		q := user.ListQuery{Filter: licadmin.UserFilter{License: r.Query["license"], Status: r.Query["status"]}, Search: r.Query["q"]}
		var err error
		if q.Limit, err = r.Limit(); err != nil {
			return nil, err
		}
		// A cursor continues the list it came from: same caller, filters
		// and search (folded, as the search compares it).
		scope := strings.Join([]string{"users", r.Email, q.Filter.License, q.Filter.Status}, "\x00")
		if search := licadmin.SearchKey(q.Search); search != "" {
			scope += "\x00q\x00" + search
			// The users found come encoded from the search index.
			page, err := apigw.ListPage(ctx, a.Cursors, r, scope, func(after []byte) ([]json.RawMessage, []byte, error) {
				q.After = after
				return a.Users.Search(ctx, r.Request, q)
			})
			if err != nil {
				return nil, err
			}
			return apigw.OKEncoded(page)
		}
		page, err := apigw.ListPage(ctx, a.Cursors, r, scope, func(after []byte) ([]*licadmin.User, []byte, error) {
			q.After = after
			return a.Users.List(ctx, r.Request, q)
		})
		if err != nil {
			return nil, err
		}
		return apigw.OK(page)
	})
}
