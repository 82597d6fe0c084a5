package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"licenseadmin/infra/apispec"
	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// The spec tests hold the handlers to openapi.yaml: each case below sends
// a real request through a handler (a fresh DynamoDB Local table, real API
// Gateway events) and validates the response — status, headers, body —
// with kin-openapi's openapi3filter.ValidateResponse, undocumented statuses
// included. Well-formed requests are validated against the spec too, so
// that the spec accepts what the handlers accept.
//
// To cover a new route: name its handler constructor after the
// operationId in openapi.yaml, add it to specHandlers, and add cases for
// its success and each of its documented problem codes to specCases.
// TestSpecCoverage fails until then.

// specHandlers maps each operationId of openapi.yaml to its handler.
var specHandlers = map[string]func(*app.App) apigw.Handler{
	"GetLicensePool":       api.GetLicensePool,
	"AssignLicense":        api.AssignLicense,
	"ModifyLicense":        api.ModifyLicense,
	"RemoveLicense":        api.RemoveLicense,
	"TransferLicense":      api.TransferLicense,
	"DeletePoolLicenses":   api.DeletePoolLicenses,
	"BulkLicenses":         api.BulkLicenses,
	"SetAlertThreshold":    api.SetAlertThreshold,
	"CreateUser":           api.CreateUser,
	"ListUsers":            api.ListUsers,
	"GetUser":              api.GetUser,
	"UpdateUser":           api.UpdateUser,
	"DeleteUser":           api.DeleteUser,
	"SendActivationEmail":  api.SendActivationEmail,
	"SendActivationEmails": api.SendActivationEmails,
	"GetActivationEmails":  api.GetActivationEmails,
	"CreateDomain":         api.CreateDomain,
	"ListDomains":          api.ListDomains,
	"VerifyDomain":         api.VerifyDomain,
	"DeleteDomain":         api.DeleteDomain,
	"ActivationPage":       api.ActivationPage,
	"Activate":             api.Activate,
	"GetImportTemplate":    api.GetImportTemplate,
	"CreateImport":         api.CreateImport,
	"GetImport":            api.GetImport,
	"ListImports":          api.ListImports,
	"ListUserLogs":         api.ListUserLogs,
	"ListMyLogs":           api.ListMyLogs,
	"ExportUserLogs":       api.ExportUserLogs,
	"ExportMyLogs":         api.ExportMyLogs,
	"GetExport":            api.GetExport,
	"GetStats":             api.GetStats,
	"GetUserStats":         api.GetUserStats,
}

// genericCodes are problem codes that many operations document for the
// same cause (the caller, the body, the Idempotency-Key, the platform).
// Each must be answered by at least one case; the operation-specific codes
// must be answered by a case of every operation that documents them.
var genericCodes = map[string]bool{
	licadmin.EUNAUTHORIZED:         true,
	licadmin.EFORBIDDEN:            true,
	licadmin.EEMAILUNVERIFIED:      true,
	licadmin.EINVALID:              true,
	licadmin.ENOTFOUND:             true,
	licadmin.ETOOLARGE:             true,
	licadmin.EUNSUPPORTEDMEDIATYPE: true,
	licadmin.EIDEMREUSED:           true,
	licadmin.EINTERNAL:             true,
	licadmin.EUNAVAILABLE:          true,
}

// uncoveredCodes cannot be produced by one sequential request; other tests
// prove them, and the spec cases validate their shared Problem schema.
var uncoveredCodes = map[string]string{
	licadmin.EIDEMINPROGRESS: "a duplicate racing with its first request: TestIdempotencyConcurrentDuplicates",
}

// specState is the world the cases run in: one account with its admin, a
// plain user and a few users, and another account.
type specState struct {
	t          *testing.T
	env        *apitest.Env
	faults     *atomic.Int32 // the apitest.Fault injected into every DynamoDB call
	dns        *dnsServer
	admin      string
	plain      string
	stranger   string // a valid token whose email belongs to no user
	acct       string
	adminID    string
	other      string // the other account's admin
	foreign    string // a user id of the other account
	u          map[string]string
	importID   string
	exportID   string
	reminderID string
	txt        map[string]string // domain -> TXT record value to publish
}

// specCase is one request and the answer it must get.
type specCase struct {
	op   string // operationId
	name string
	req  func(s *specState) apitest.Request
	// status is the status the case must get; code the problem code ("" for
	// a success).
	status int
	code   string
	// badRequest marks a request that breaks the spec on purpose: it is not
	// validated, only its answer is.
	badRequest bool
	// fault is injected into every DynamoDB call of the case.
	fault apitest.Fault
	// then runs after the case passed, to record ids for later cases.
	then func(s *specState, r *apitest.Response)
}

func adminReq(params map[string]string, body any) func(s *specState) apitest.Request {
	return func(s *specState) apitest.Request { return apitest.Request{Email: s.admin, Params: params, Body: body} }
}

// onUser returns a request of the admin on user key's id.
func onUser(key string, body any) func(s *specState) apitest.Request {
	return func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.u[key]}, Body: body}
	}
}

func with(f func(s *specState) apitest.Request, edit func(s *specState, r *apitest.Request)) func(s *specState) apitest.Request {
	return func(s *specState) apitest.Request {
		r := f(s)
		edit(s, &r)
		return r
	}
}

func header(name, value string) func(s *specState, r *apitest.Request) {
	return func(_ *specState, r *apitest.Request) {
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
		r.Headers[name] = value
	}
}

func query(kv ...string) func(s *specState, r *apitest.Request) {
	return func(_ *specState, r *apitest.Request) {
		if r.Query == nil {
			r.Query = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Query[kv[i]] = kv[i+1]
		}
	}
}

func as(email func(s *specState) string) func(s *specState, r *apitest.Request) {
	return func(s *specState, r *apitest.Request) { r.Email = email(s) }
}

func remember(key string) func(s *specState, r *apitest.Response) {
	return func(s *specState, r *apitest.Response) {
		var u licadmin.User
		r.Decode(s.t, &u)
		s.u[key] = u.ID
	}
}

func newUser(email, role string) map[string]string {
	return map[string]string{"email": email, "firstName": "Ada", "lastName": "Lovelace", "language": "en", "role": role}
}

// bulkReq returns the admin's bulk change of action (and tier, unless "")
// for the users keys.
func bulkReq(action, tier string, keys ...string) func(s *specState) apitest.Request {
	return func(s *specState) apitest.Request {
		ids := []string{}
		for _, k := range keys {
			ids = append(ids, s.u[k])
		}
		b := map[string]any{"action": action, "userIds": ids}
		if tier != "" {
			b["tier"] = tier
		}
		return apitest.Request{Email: s.admin, Body: b}
	}
}

// specCases run in order; each may rely on the state the earlier ones left.
var specCases = []specCase{
	// Who may call.
	{op: "GetLicensePool", name: "admin", req: adminReq(nil, nil), status: 200},
	{op: "GetLicensePool", name: "no email claim", req: with(adminReq(nil, nil), as(func(*specState) string { return "" })), status: 401, code: licadmin.EUNAUTHORIZED},
	{op: "GetLicensePool", name: "token of no user", req: with(adminReq(nil, nil), as(func(s *specState) string { return s.stranger })), status: 403, code: licadmin.EFORBIDDEN},
	{op: "GetLicensePool", name: "not an admin", req: with(adminReq(nil, nil), as(func(s *specState) string { return s.plain })), status: 403, code: licadmin.EFORBIDDEN},
	{op: "GetLicensePool", name: "email not verified", req: with(adminReq(nil, nil), func(_ *specState, r *apitest.Request) { r.Unverified = true }), status: 403, code: licadmin.EEMAILUNVERIFIED},
	{op: "GetLicensePool", name: "DynamoDB fails", req: adminReq(nil, nil), fault: apitest.Fail, status: 500, code: licadmin.EINTERNAL},

	// Users.
	{op: "CreateUser", name: "created", req: adminReq(nil, newUser("u1@acme.test", "user")), status: 201, then: remember("u1")},
	{op: "CreateUser", name: "second", req: adminReq(nil, newUser("u2@acme.test", "user")), status: 201, then: remember("u2")},
	{op: "CreateUser", name: "webmail, with a key", req: with(adminReq(nil, newUser("u3@gmail.com", "user")), header("Idempotency-Key", "create-u3")), status: 201, then: remember("u3")},
	{op: "CreateUser", name: "replayed", req: with(adminReq(nil, newUser("u3@gmail.com", "user")), header("Idempotency-Key", "create-u3")), status: 201},
	{op: "CreateUser", name: "key reused", req: with(adminReq(nil, newUser("u4@gmail.com", "user")), header("Idempotency-Key", "create-u3")), status: 422, code: licadmin.EIDEMREUSED},
	{op: "CreateUser", name: "bad key", req: with(adminReq(nil, newUser("u4@gmail.com", "user")), header("Idempotency-Key", strings.Repeat("k", 256))), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "CreateUser", name: "email taken", req: adminReq(nil, newUser("U1@acme.test", "user")), status: 409, code: licadmin.EEMAILTAKEN},
	{op: "CreateUser", name: "domain not approved", req: adminReq(nil, newUser("x@elsewhere.test", "user")), status: 422, code: licadmin.EDOMAINNOTAPPROVED},
	{op: "CreateUser", name: "invalid fields", req: adminReq(nil, map[string]string{"email": "nope", "firstName": "", "lastName": "L"}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "CreateUser", name: "unknown field", req: adminReq(nil, map[string]string{"email": "a@acme.test", "firstName": "A", "lastName": "B", "age": "3"}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "CreateUser", name: "not JSON", req: with(adminReq(nil, "email=a@acme.test"), header("Content-Type", "application/x-www-form-urlencoded")), status: 415, code: licadmin.EUNSUPPORTEDMEDIATYPE, badRequest: true},
	{op: "CreateUser", name: "too large", req: adminReq(nil, `{"email":"`+strings.Repeat("a", apigw.MaxBodyBytes)+`"}`), status: 413, code: licadmin.ETOOLARGE, badRequest: true},

	{op: "ListUsers", name: "first page", req: with(adminReq(nil, nil), query("limit", "2")), status: 200},
	{op: "ListUsers", name: "filtered", req: with(adminReq(nil, nil), query("license", "none", "status", "pending")), status: 200},
	{op: "ListUsers", name: "limit out of range", req: with(adminReq(nil, nil), query("limit", "201")), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "ListUsers", name: "searched", req: with(adminReq(nil, nil), query("q", "ADA", "limit", "1")), status: 200},
	{op: "ListUsers", name: "searched and filtered", req: with(adminReq(nil, nil), query("q", "u", "license", "none", "status", "pending")), status: 200},
	{op: "ListUsers", name: "search too long", req: with(adminReq(nil, nil), query("q", strings.Repeat("a", 101))), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "ListUsers", name: "forged cursor", req: with(adminReq(nil, nil), query("cursor", "Zm9yZ2Vk")), status: 400, code: licadmin.EINVALID},

	{op: "GetUser", name: "found", req: onUser("u1", nil), status: 200},
	{op: "GetUser", name: "unknown", req: adminReq(map[string]string{"userId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},
	// An id beyond DynamoDB's 2 KiB key limit names nothing: 404, not 500
	// (found by probing past what schemathesis generates).
	{op: "GetUser", name: "id of 3000 characters", req: adminReq(map[string]string{"userId": strings.Repeat("x", 3000)}, nil), status: 404, code: licadmin.ENOTFOUND},
	{op: "TransferLicense", name: "target id of 3000 characters", req: onUser("u2", map[string]string{"toUserId": strings.Repeat("x", 3000)}), status: 404, code: licadmin.ENOTFOUND},
	{op: "GetLicensePool", name: "token email of 2100 characters", req: with(adminReq(nil, nil), as(func(*specState) string { return strings.Repeat("b", 2100) + "@acme.test" })), status: 403, code: licadmin.EFORBIDDEN},
	{op: "GetUser", name: "other account's", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.foreign}}
	}, status: 404, code: licadmin.ENOTFOUND},

	// Licenses: the pool has eco 2, advanced 0, pro 1.
	{op: "AssignLicense", name: "assigned", req: onUser("u1", map[string]string{"tier": "eco"}), status: 200},
	{op: "AssignLicense", name: "with a key", req: with(onUser("u3", map[string]string{"tier": "eco"}), header("Idempotency-Key", "assign-u3")), status: 200},
	{op: "AssignLicense", name: "replayed", req: with(onUser("u3", map[string]string{"tier": "eco"}), header("Idempotency-Key", "assign-u3")), status: 200},
	{op: "AssignLicense", name: "already assigned", req: onUser("u1", map[string]string{"tier": "pro"}), status: 409, code: licadmin.ELICENSEASSIGNED},
	{op: "AssignLicense", name: "none available", req: onUser("u2", map[string]string{"tier": "advanced"}), status: 409, code: licadmin.ENOLICENSE},
	{op: "AssignLicense", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, map[string]string{"tier": "eco"}), status: 404, code: licadmin.ENOTFOUND},
	{op: "AssignLicense", name: "unknown tier", req: onUser("u2", map[string]string{"tier": "gold"}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "AssignLicense", name: "no body", req: onUser("u2", nil), status: 400, code: licadmin.EINVALID, badRequest: true},

	{op: "ModifyLicense", name: "changed", req: onUser("u1", map[string]string{"tier": "pro"}), status: 200},
	{op: "ModifyLicense", name: "same tier", req: onUser("u1", map[string]string{"tier": "pro"}), status: 200},
	{op: "ModifyLicense", name: "no license", req: onUser("u2", map[string]string{"tier": "eco"}), status: 409, code: licadmin.EUSERNOLICENSE},
	{op: "ModifyLicense", name: "none available", req: onUser("u1", map[string]string{"tier": "advanced"}), status: 409, code: licadmin.ENOLICENSE},
	{op: "ModifyLicense", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, map[string]string{"tier": "eco"}), status: 404, code: licadmin.ENOTFOUND},
	{op: "ModifyLicense", name: "bad tier type", req: onUser("u1", map[string]any{"tier": 3}), status: 400, code: licadmin.EINVALID, badRequest: true},

	{op: "TransferLicense", name: "transferred", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.u["u1"]}, Body: map[string]string{"toUserId": s.u["u2"]}}
	}, status: 200},
	{op: "TransferLicense", name: "no license", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.u["u1"]}, Body: map[string]string{"toUserId": s.u["u2"]}}
	}, status: 409, code: licadmin.EUSERNOLICENSE},
	{op: "TransferLicense", name: "target has one", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.u["u2"]}, Body: map[string]string{"toUserId": s.u["u3"]}}
	}, status: 409, code: licadmin.ETARGETHASLICENSE},
	{op: "TransferLicense", name: "unknown target", req: onUser("u2", map[string]string{"toUserId": unknownID}), status: 404, code: licadmin.ENOTFOUND},
	{op: "TransferLicense", name: "no target", req: onUser("u2", map[string]string{}), status: 400, code: licadmin.EINVALID, badRequest: true},

	{op: "RemoveLicense", name: "removed", req: onUser("u2", nil), status: 200},
	{op: "RemoveLicense", name: "no license", req: onUser("u2", nil), status: 409, code: licadmin.EUSERNOLICENSE},
	{op: "RemoveLicense", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},

	// Bulk changes: the pool has eco 2 (u3 holds one), advanced 0, pro 1;
	// the cases leave it so.
	{op: "BulkLicenses", name: "assigned, with a key", req: with(bulkReq("assign", "pro", "u1"), header("Idempotency-Key", "bulk-1")), status: 200},
	{op: "BulkLicenses", name: "replayed", req: with(bulkReq("assign", "pro", "u1"), header("Idempotency-Key", "bulk-1")), status: 200},
	{op: "BulkLicenses", name: "key reused", req: with(bulkReq("assign", "eco", "u2"), header("Idempotency-Key", "bulk-1")), status: 422, code: licadmin.EIDEMREUSED},
	{op: "BulkLicenses", name: "modified, one at the tier already", req: bulkReq("modify", "eco", "u1", "u3"), status: 200},
	{op: "BulkLicenses", name: "none available", req: bulkReq("assign", "advanced", "u2"), status: 409, code: licadmin.ENOLICENSE},
	{op: "BulkLicenses", name: "a user has a license", req: bulkReq("assign", "pro", "u2", "u3"), status: 409, code: licadmin.ELICENSEASSIGNED},
	{op: "BulkLicenses", name: "a user has none", req: bulkReq("remove", "", "u2"), status: 409, code: licadmin.EUSERNOLICENSE},
	{op: "BulkLicenses", name: "unknown user", req: with(bulkReq("remove", "", "u1"), func(s *specState, r *apitest.Request) {
		b := r.Body.(map[string]any)
		b["userIds"] = append(b["userIds"].([]string), unknownID)
	}), status: 404, code: licadmin.ENOTFOUND},
	{op: "BulkLicenses", name: "removed", req: bulkReq("remove", "eco", "u1"), status: 200},
	{op: "BulkLicenses", name: "repeated id", req: bulkReq("assign", "eco", "u2", "u2"), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "BulkLicenses", name: "unknown action", req: bulkReq("give", "eco", "u2"), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "BulkLicenses", name: "not an admin", req: with(bulkReq("assign", "eco", "u2"), as(func(s *specState) string { return s.plain })), status: 403, code: licadmin.EFORBIDDEN},

	{op: "DeletePoolLicenses", name: "deleted", req: with(adminReq(map[string]string{"tier": "eco"}, nil), query("quantity", "1")), status: 200},
	{op: "DeletePoolLicenses", name: "in use", req: with(adminReq(map[string]string{"tier": "eco"}, nil), query("quantity", "5")), status: 409, code: licadmin.ELICENSESINUSE},
	{op: "DeletePoolLicenses", name: "no quantity", req: adminReq(map[string]string{"tier": "eco"}, nil), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "DeletePoolLicenses", name: "unknown tier", req: with(adminReq(map[string]string{"tier": "gold"}, nil), query("quantity", "1")), status: 404, code: licadmin.ENOTFOUND, badRequest: true},
	{op: "DeletePoolLicenses", name: "busy table", req: with(adminReq(map[string]string{"tier": "pro"}, nil), query("quantity", "1")), fault: apitest.Conflict, status: 503, code: licadmin.EUNAVAILABLE},

	{op: "SetAlertThreshold", name: "set", req: adminReq(map[string]string{"tier": "pro"}, map[string]int{"alertThreshold": 1}), status: 200},
	{op: "SetAlertThreshold", name: "negative", req: adminReq(map[string]string{"tier": "pro"}, map[string]int{"alertThreshold": -1}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "SetAlertThreshold", name: "unknown tier", req: adminReq(map[string]string{"tier": "gold"}, map[string]int{"alertThreshold": 1}), status: 404, code: licadmin.ENOTFOUND, badRequest: true},

	// Editing and deleting users.
	{op: "UpdateUser", name: "edited under If-Match", req: with(onUser("u1", map[string]any{"firstName": "Grace", "mobile": "+33 6 12 34 56 78", "timeZone": "Europe/Paris"}),
		func(s *specState, r *apitest.Request) {
			cur := apitest.Do(s.t, api.GetUser(s.env.App), apitest.Request{Route: "GET /v1/users/{userId}", Email: s.admin, Params: r.Params})
			cur.Want(s.t, http.StatusOK)
			header("If-Match", cur.Headers["ETag"])(s, r)
		}), status: 200},
	{op: "UpdateUser", name: "stale If-Match", req: with(onUser("u1", map[string]any{"firstName": "Ada"}), header("If-Match", `"999"`)), status: 412, code: licadmin.EPRECONDITION},
	{op: "UpdateUser", name: "email taken", req: onUser("u1", map[string]any{"email": "u2@acme.test"}), status: 409, code: licadmin.EEMAILTAKEN},
	{op: "UpdateUser", name: "last admin", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.adminID}, Body: map[string]any{"role": "user"}}
	}, status: 409, code: licadmin.ELASTADMIN},
	{op: "UpdateUser", name: "requires pro", req: onUser("u1", map[string]any{"security": map[string]any{"protectedReplies": "sms"}}), status: 422, code: licadmin.EREQUIRESPRO},
	{op: "UpdateUser", name: "domain not approved", req: onUser("u1", map[string]any{"email": "u1@elsewhere.test"}), status: 422, code: licadmin.EDOMAINNOTAPPROVED},
	{op: "UpdateUser", name: "invalid", req: onUser("u1", map[string]any{"language": "de", "firstName": nil}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "UpdateUser", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, map[string]any{"firstName": "X"}), status: 404, code: licadmin.ENOTFOUND},

	{op: "SendActivationEmail", name: "queued", req: onUser("u1", nil), status: 202},
	{op: "SendActivationEmail", name: "again at once", req: onUser("u1", nil), status: 429, code: licadmin.ERATELIMITED},
	{op: "SendActivationEmail", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},

	{op: "DeleteUser", name: "deleted", req: onUser("u2", nil), status: 204},
	{op: "DeleteUser", name: "with a key", req: with(onUser("u3", nil), header("Idempotency-Key", "delete-u3")), status: 204},
	{op: "DeleteUser", name: "replayed", req: with(onUser("u3", nil), header("Idempotency-Key", "delete-u3")), status: 204},
	{op: "DeleteUser", name: "last admin", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"userId": s.adminID}}
	}, status: 409, code: licadmin.ELASTADMIN},
	{op: "DeleteUser", name: "gone", req: onUser("u2", nil), status: 404, code: licadmin.ENOTFOUND},

	// Domains.
	{op: "CreateDomain", name: "requested", req: adminReq(nil, map[string]string{"domain": "new.test"}), status: 201, then: rememberTXT},
	{op: "CreateDomain", name: "asked again", req: adminReq(nil, map[string]string{"domain": "NEW.test."}), status: 200},
	{op: "CreateDomain", name: "shared, requested", req: adminReq(nil, map[string]string{"domain": "shared.test"}), status: 201, then: rememberTXT},
	{op: "CreateDomain", name: "approved for another account", req: adminReq(nil, map[string]string{"domain": "globex.test"}), status: 409, code: licadmin.EDOMAINCLAIMED},
	{op: "CreateDomain", name: "webmail", req: adminReq(nil, map[string]string{"domain": "gmail.com"}), status: 409, code: licadmin.EDOMAINCLAIMED},
	{op: "CreateDomain", name: "not a domain", req: adminReq(nil, map[string]string{"domain": "localhost"}), status: 422, code: licadmin.EINVALIDDOMAIN},
	{op: "CreateDomain", name: "missing", req: adminReq(nil, map[string]string{}), status: 400, code: licadmin.EINVALID, badRequest: true},

	{op: "VerifyDomain", name: "no TXT record yet", req: adminReq(map[string]string{"domain": "new.test"}, nil), status: 422, code: licadmin.EDOMAINUNVERIFIED},
	{op: "VerifyDomain", name: "verified", req: func(s *specState) apitest.Request {
		s.dns.set("new.test", s.txt["new.test"])
		return apitest.Request{Email: s.admin, Params: map[string]string{"domain": "new.test"}}
	}, status: 200},
	{op: "VerifyDomain", name: "another account verified first", req: func(s *specState) apitest.Request {
		s.dns.set("shared.test", s.txt["shared.test"])
		other := apitest.Do(s.t, api.CreateDomain(s.env.App), apitest.Request{Route: "POST /v1/domains", Email: s.other, Body: map[string]string{"domain": "shared.test"}})
		other.Want(s.t, http.StatusCreated)
		var d licadmin.Domain
		other.Decode(s.t, &d)
		s.dns.set("shared.test", s.txt["shared.test"], *d.TXTRecord)
		apitest.Do(s.t, api.VerifyDomain(s.env.App), apitest.Request{Route: "POST /v1/domains/{domain}/verify", Email: s.other, Params: map[string]string{"domain": "shared.test"}}).Want(s.t, http.StatusOK)
		return apitest.Request{Email: s.admin, Params: map[string]string{"domain": "shared.test"}}
	}, status: 409, code: licadmin.EDOMAINCLAIMED},
	{op: "VerifyDomain", name: "unknown", req: adminReq(map[string]string{"domain": "nowhere.test"}, nil), status: 404, code: licadmin.ENOTFOUND},

	{op: "ListDomains", name: "first page", req: with(adminReq(nil, nil), query("limit", "1")), status: 200},
	{op: "ListDomains", name: "limit 0", req: with(adminReq(nil, nil), query("limit", "0")), status: 400, code: licadmin.EINVALID, badRequest: true},

	{op: "DeleteDomain", name: "deleted", req: adminReq(map[string]string{"domain": "new.test"}, nil), status: 204},
	{op: "DeleteDomain", name: "unknown", req: adminReq(map[string]string{"domain": "new.test"}, nil), status: 404, code: licadmin.ENOTFOUND},

	// Activation (public).
	{op: "ActivationPage", name: "a user's token", req: func(s *specState) apitest.Request {
		return apitest.Request{Query: map[string]string{"token": s.mintToken("u1")}}
	}, status: 200},
	{op: "ActivationPage", name: "unknown token", req: func(*specState) apitest.Request {
		return apitest.Request{Query: map[string]string{"token": "not-a-real-token"}}
	}, status: 200},
	{op: "ActivationPage", name: "no token", req: func(*specState) apitest.Request { return apitest.Request{} }, status: 200},
	{op: "Activate", name: "activated", req: func(s *specState) apitest.Request {
		return apitest.Request{Body: map[string]string{"token": s.mintToken("u1")}}
	}, status: 200},
	{op: "Activate", name: "unknown token", req: func(*specState) apitest.Request {
		return apitest.Request{Body: map[string]string{"token": "not-a-real-token"}}
	}, status: 410, code: licadmin.ETOKENINVALID},
	{op: "Activate", name: "no token", req: func(*specState) apitest.Request {
		return apitest.Request{Body: map[string]string{}}
	}, status: 400, code: licadmin.EINVALID, badRequest: true},

	// Bulk reminders.
	{op: "SendActivationEmails", name: "a list", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Body: map[string]any{"userIds": []string{s.u["u1"], unknownID}}}
	}, status: 202, then: func(s *specState, r *apitest.Response) {
		var rem struct{ ReminderID string }
		r.Decode(s.t, &rem)
		s.reminderID = rem.ReminderID
	}},
	{op: "SendActivationEmails", name: "all pending", req: adminReq(nil, map[string]bool{"allPending": true}), status: 202},
	{op: "SendActivationEmails", name: "neither", req: adminReq(nil, map[string]any{}), status: 400, code: licadmin.EINVALID},
	{op: "SendActivationEmails", name: "a plain user", req: with(adminReq(nil, map[string]bool{"allPending": true}), as(func(s *specState) string { return s.plain })), status: 403, code: licadmin.EFORBIDDEN},
	{op: "GetActivationEmails", name: "done", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"reminderId": s.reminderID}}
	}, status: 200},
	{op: "GetActivationEmails", name: "unknown", req: adminReq(map[string]string{"reminderId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},

	// Imports.
	{op: "GetImportTemplate", name: "template", req: adminReq(nil, nil), status: 200},
	{op: "CreateImport", name: "created", req: adminReq(nil, map[string]bool{"dryRun": true}), status: 201, then: func(s *specState, r *apitest.Response) {
		var up struct{ ImportID string }
		r.Decode(s.t, &up)
		s.importID = up.ImportID
	}},
	{op: "CreateImport", name: "empty body", req: adminReq(nil, nil), status: 201},
	{op: "CreateImport", name: "bad field", req: adminReq(nil, map[string]string{"dryRun": "yes"}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "GetImport", name: "pending", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"importId": s.importID}}
	}, status: 200},
	{op: "GetImport", name: "unknown", req: adminReq(map[string]string{"importId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},
	{op: "ListImports", name: "newest first", req: with(adminReq(nil, nil), query("limit", "1")), status: 200},
	{op: "ListImports", name: "bad limit", req: with(adminReq(nil, nil), query("limit", "201")), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "ListImports", name: "bad cursor", req: with(adminReq(nil, nil), query("cursor", "forged")), status: 400, code: licadmin.EINVALID},
	{op: "ListImports", name: "a plain user", req: with(adminReq(nil, nil), as(func(s *specState) string { return s.plain })), status: 403, code: licadmin.EFORBIDDEN},

	// Logs, exports and statistics.
	{op: "ListUserLogs", name: "page", req: with(onUser("u1", nil), query("from", "2026-01-01", "type", "sent", "limit", "10")), status: 200},
	{op: "ListUserLogs", name: "bad time", req: with(onUser("u1", nil), query("from", "yesterday")), status: 400, code: licadmin.EINVALID},
	{op: "ListUserLogs", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},
	{op: "ListMyLogs", name: "a plain user's", req: with(adminReq(nil, nil), as(func(s *specState) string { return s.plain })), status: 200},
	{op: "ListMyLogs", name: "bad type", req: with(adminReq(nil, nil), query("type", "clicked")), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "ExportUserLogs", name: "accepted", req: onUser("u1", map[string]string{"from": "2026-01-01", "format": "csv"}), status: 202, then: func(s *specState, r *apitest.Response) {
		var x struct{ ExportID string }
		r.Decode(s.t, &x)
		s.exportID = x.ExportID
	}},
	{op: "ExportUserLogs", name: "bad format", req: onUser("u1", map[string]string{"format": "xlsx"}), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "ExportUserLogs", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},
	{op: "GetExport", name: "running", req: func(s *specState) apitest.Request {
		return apitest.Request{Email: s.admin, Params: map[string]string{"exportId": s.exportID}}
	}, status: 200},
	{op: "GetExport", name: "unknown", req: adminReq(map[string]string{"exportId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},
	{op: "ExportMyLogs", name: "a plain user's own", req: with(adminReq(nil, map[string]string{"from": "2026-01-01"}), as(func(s *specState) string { return s.plain })), status: 202},
	{op: "ExportMyLogs", name: "bad range", req: with(adminReq(nil, map[string]string{"from": "soon"}), as(func(s *specState) string { return s.plain })), status: 400, code: licadmin.EINVALID},
	{op: "GetExport", name: "not the asker's", req: with(func(s *specState) apitest.Request {
		return apitest.Request{Params: map[string]string{"exportId": s.exportID}}
	}, as(func(s *specState) string { return s.plain })), status: 404, code: licadmin.ENOTFOUND},
	{op: "GetStats", name: "this month", req: adminReq(nil, nil), status: 200},
	{op: "GetStats", name: "as CSV", req: with(adminReq(nil, nil), query("format", "csv", "from", "2026-01", "to", "2026-03")), status: 200},
	{op: "GetStats", name: "bad month", req: with(adminReq(nil, nil), query("from", "2026-13")), status: 400, code: licadmin.EINVALID, badRequest: true},
	{op: "GetUserStats", name: "a user's", req: with(onUser("u1", nil), query("from", "2026-01", "to", "2026-02")), status: 200},
	{op: "GetUserStats", name: "from after to", req: with(onUser("u1", nil), query("from", "2026-03", "to", "2026-02")), status: 400, code: licadmin.EINVALID},
	{op: "GetUserStats", name: "unknown user", req: adminReq(map[string]string{"userId": unknownID}, nil), status: 404, code: licadmin.ENOTFOUND},
}

// sentMessages is an export queue that keeps what it is sent.
type sentMessages struct{ bodies [][]byte }

func (q *sentMessages) Send(_ context.Context, body []byte) error {
	q.bodies = append(q.bodies, body)
	return nil
}

func rememberTXT(s *specState, r *apitest.Response) {
	var d licadmin.Domain
	r.Decode(s.t, &d)
	if d.TXTRecord == nil {
		s.t.Fatalf("a requested domain without txtRecord: %s", r.Body)
	}
	s.txt[d.Domain] = *d.TXTRecord
}

// mintToken mints an activation token for user key, as the stream
// processor does when it sends the activation email, and returns it.
func (s *specState) mintToken(key string) string {
	link, err := s.env.App.Activation.Mint(context.Background(), &store.Outbox{
		ID: "outbox-" + key, Kind: licadmin.EmailActivation, AccountID: s.acct, UserID: s.u[key], Language: "fr",
	})
	if err != nil {
		s.t.Fatalf("mint an activation token: %v", err)
	}
	u, err := url.Parse(link.URL)
	if err != nil {
		s.t.Fatalf("activation link %q: %v", link.URL, err)
	}
	return u.Query().Get("token")
}

func newSpecState(t *testing.T) *specState {
	t.Helper()
	faults := &atomic.Int32{}
	inject, _ := apitest.Faults(func(string, int) apitest.Fault { return apitest.Fault(faults.Load()) })
	env := apitest.New(t, inject)
	// Injected conflicts are retried at once: the case needs the outcome,
	// not the backoff.
	env.App.Store.Sleep = func(context.Context, time.Duration) error { return nil }
	dns := newDNSServer(t)
	useDNS(env, dns.Addr, 2*time.Second)
	env.App.Activation.PublicBaseURL = "https://admin.example.test"
	env.App.Exports.Queue = &sentMessages{}
	if testing.Verbose() {
		env.App.API.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s := &specState{
		t: t, env: env, faults: faults, dns: dns,
		admin: "admin@acme.test", plain: "plain@acme.test", stranger: "stranger@nowhere.test", other: "boss@globex.test",
		u: map[string]string{}, txt: map[string]string{},
	}
	s.acct, s.adminID = env.MustAccount(t, "Acme", s.admin)
	_, s.foreign = env.MustAccount(t, "Globex", s.other)
	env.MustLicenses(t, s.acct, licadmin.Eco, 2)
	env.MustLicenses(t, s.acct, licadmin.Pro, 1)
	apitest.Do(t, api.CreateUser(env.App), apitest.Request{Route: "POST /v1/users", Email: s.admin, Body: newUser(s.plain, "user")}).Want(t, http.StatusCreated)
	return s
}

// TestSpecResponses ensures every answer of every handler, successes and
// each documented error, is what openapi.yaml says: its status is
// documented for the operation, its headers and body match the
// response's schema (problem codes included), and a response documented
// without content has no body.
func TestSpecResponses(t *testing.T) {
	ctx := context.Background()
	doc, err := apispec.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	s := newSpecState(t)
	handlers := map[string]apigw.Handler{}
	for id, h := range specHandlers {
		handlers[id] = h(s.env.App)
	}
	for i, c := range specCases {
		name := fmt.Sprintf("%02d %s %s", i, c.op, c.name)
		op, ok := apispec.ByID(doc, c.op)
		if !ok {
			t.Fatalf("%s: openapi.yaml has no operation %s", name, c.op)
		}
		h := handlers[c.op]
		if h == nil {
			t.Fatalf("%s: no handler for %s in specHandlers", name, c.op)
		}
		req := c.req(s)
		req.Route = op.Key()
		s.faults.Store(int32(c.fault))
		resp := apitest.Do(t, h, req)
		s.faults.Store(int32(apitest.NoFault))
		ok = t.Run(name, func(t *testing.T) {
			if c.code == "" {
				resp.Want(t, c.status)
			} else {
				resp.WantProblem(t, c.status, c.code)
			}
			validateExchange(t, doc, op, req, resp, !c.badRequest)
		})
		if ok && c.then != nil {
			c.then(s, resp)
		}
	}
}

// validateExchange validates resp, and req when checkRequest, against the
// operation op of doc.
func validateExchange(t *testing.T, doc *openapi3.T, op apispec.Operation, req apitest.Request, resp *apitest.Response, checkRequest bool) {
	t.Helper()
	ctx := context.Background()
	route, err := apispec.Route(doc, op.Key())
	if err != nil {
		t.Fatal(err)
	}
	ev := req.Event()
	path := op.Path
	for k, v := range req.Params {
		path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
	}
	q := url.Values{}
	for k, v := range req.Query {
		q.Set(k, v)
	}
	target := "http://127.0.0.1:3000" + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, op.Method, target, strings.NewReader(ev.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ev.Headers {
		hr.Header.Set(k, v)
	}
	if req.Email != "" {
		hr.Header.Set("Authorization", "Bearer a-token-for-"+req.Email)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: hr, PathParams: req.Params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if checkRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("openapi.yaml refuses this request, which the handler answered %d:\n%v", resp.StatusCode, err)
		}
	}
	h := http.Header{}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	body := []byte(resp.Body)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: h,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("the response breaks openapi.yaml (%s):\n%v\nheaders %v\nbody %s", op.Key(), err, resp.Headers, truncate(resp.Body))
	}
	if rr := route.Operation.Responses.Status(resp.StatusCode); rr != nil && rr.Value != nil && len(rr.Value.Content) == 0 && len(body) > 0 {
		t.Errorf("openapi.yaml documents %d of %s without content, but the body is %s", resp.StatusCode, op.Key(), truncate(resp.Body))
	}
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500] + "..."
	}
	return s
}

// TestSpecCoverage ensures the spec cases keep up with the code and the
// spec: every handler of package api is an operation of openapi.yaml with
// an entry in specHandlers; every operation in specHandlers has a success
// case and a case for each problem code it documents; and each generic
// code is answered by some case.
func TestSpecCoverage(t *testing.T) {
	doc, err := apispec.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range handlerConstructors(t) {
		if _, ok := apispec.ByID(doc, name); !ok {
			t.Errorf("handler api.%s has no operation in openapi.yaml: describe its route there with operationId %s", name, name)
		}
		if specHandlers[name] == nil {
			t.Errorf("handler api.%s is not in specHandlers (shared/api/openapi_test.go): add it, with cases for its answers", name)
		}
	}
	answered := map[string]map[string]bool{} // op -> codes, "2xx" for a success
	allCodes := map[string]bool{}
	for _, c := range specCases {
		if answered[c.op] == nil {
			answered[c.op] = map[string]bool{}
		}
		code := c.code
		if code == "" && c.status < 300 {
			code = "2xx"
		}
		answered[c.op][code] = true
		allCodes[code] = true
	}
	ids := slices.Sorted(maps.Keys(specHandlers))
	for _, id := range ids {
		op, ok := apispec.ByID(doc, id)
		if !ok {
			t.Errorf("specHandlers names %s, which openapi.yaml does not have", id)
			continue
		}
		route, err := apispec.Route(doc, op.Key())
		if err != nil {
			t.Fatal(err)
		}
		if !answered[id]["2xx"] {
			t.Errorf("%s (%s): no case gets a success", id, op.Key())
		}
		for _, code := range documentedCodes(route.Operation) {
			if genericCodes[code] || uncoveredCodes[code] != "" {
				continue
			}
			if !answered[id][code] {
				t.Errorf("%s (%s) documents %q, but no case gets it", id, op.Key(), code)
			}
		}
	}
	for code := range genericCodes {
		if !allCodes[code] {
			t.Errorf("no case gets the generic code %q", code)
		}
	}
}

// documentedCodes returns the problem codes the operation's responses
// document, from the code property's const or enum in each
// application/problem+json schema (or the allOf parts of it).
func documentedCodes(op *openapi3.Operation) []string {
	var codes []string
	for _, rr := range op.Responses.Map() {
		mt := rr.Value.Content.Get(apigw.ProblemContentType)
		if mt == nil || mt.Schema == nil {
			continue
		}
		// The operation's own codes narrow the shared Problem schema (a
		// $ref, whose code lists every code) in an allOf part.
		parts := append([]*openapi3.SchemaRef{mt.Schema}, mt.Schema.Value.AllOf...)
		for _, p := range parts {
			if p.Ref != "" {
				continue
			}
			code := p.Value.Properties["code"]
			if code == nil || code.Value == nil {
				continue
			}
			if s, ok := code.Value.Const.(string); ok {
				codes = append(codes, s)
			}
			for _, e := range code.Value.Enum {
				if s, ok := e.(string); ok {
					codes = append(codes, s)
				}
			}
		}
	}
	sort.Strings(codes)
	return codes
}
