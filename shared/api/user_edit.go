package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/user"
)

// UpdateUser serves PATCH /v1/users/{userId}.
func UpdateUser(a *app.App) apigw.Handler {
	return a.API.Handle("UpdateUser", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var p user.Patch
		if err := r.Decode(&p); err != nil {
			return nil, err
		}
		pre, err := ifMatch(r)
		if err != nil {
			return nil, err
		}
		ok := func(u *licadmin.User) *apigw.Response {
			return &apigw.Response{Status: http.StatusOK, Body: u, Headers: map[string]string{"ETag": etag(u)}}
		}
		return apigw.Answer(ctx, ok, func() (*licadmin.User, error) {
			return a.Users.Update(ctx, r.Request, r.Param("userId"), p, pre)
		})
	}, apigw.Idempotent())
}

// DeleteUser serves DELETE /v1/users/{userId}: 204 No Content.
func DeleteUser(a *app.App) apigw.Handler {
	return a.API.Handle("DeleteUser", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		return apigw.Answer(ctx, apigw.NoContent, func() (*licadmin.User, error) {
			return nil, a.Users.Delete(ctx, r.Request, r.Param("userId"))
		})
	}, apigw.Idempotent())
}

// ifMatch parses an If-Match header (RFC 9110 §13.1.1) against the ETags
// that etag issues: "*", or a list of entity tags. Weak tags and tags this
// API never issued are valid but match nothing (If-Match compares strongly).
// It returns nil without the header, and EINVALID for a malformed one.
func ifMatch(r *apigw.Request) (*user.Precondition, error) {
	h := strings.TrimSpace(r.Header("if-match"))
	if h == "" {
		return nil, nil
	}
	if h == "*" {
		return &user.Precondition{Any: true}, nil
	}
	pre := &user.Precondition{}
	for _, tag := range strings.Split(h, ",") {
		tag = strings.TrimSpace(tag)
		weak := strings.HasPrefix(tag, "W/")
		tag = strings.TrimPrefix(tag, "W/")
		if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || strings.Contains(tag[1:len(tag)-1], `"`) {
			return nil, licadmin.Invalid("If-Match", "invalid_header", `If-Match must be "*" or entity tags such as "3", as sent in ETag`)
		}
		if v, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64); err == nil && !weak {
			pre.Versions = append(pre.Versions, v)
		}
	}
	return pre, nil
}
