package api

import (
	"context"
	"math"
	"net/http"

	"licenseadmin/shared/activation"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// SendActivationEmail serves POST /v1/users/{userId}/activation-email:
// 202 {"userId","status":"queued"}; the email leaves from the outbox.
func SendActivationEmail(a *app.App) apigw.Handler {
	return a.API.Handle("SendActivationEmail", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		accepted := func(q store.ActivationQueued) *apigw.Response {
			return &apigw.Response{Status: http.StatusAccepted, Body: q}
		}
		userID := r.Param("userId")
		return apigw.Answer(ctx, accepted, func() (store.ActivationQueued, error) {
			return store.ActivationQueued{UserID: userID, Status: "queued"}, a.Activation.RequestEmail(ctx, r.Request, userID)
		})
	}, apigw.Idempotent())
}

// ActivationPage serves GET /activate?token=… (public): the page whose
// button activates the account, in the user's language. Loading it
// changes nothing.
func ActivationPage(a *app.App) apigw.Handler {
	return a.API.Handle("ActivationPage", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		token := r.Query["token"]
		page, err := activation.RenderPage(token, a.Activation.PageLanguages(ctx, token, r.Header("accept-language")))
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Raw: page, Headers: activation.PageHeaders()}, nil
	}, apigw.Public())
}

// Activate serves POST /v1/activations {"token"} (public): 200
// {"status":"active"}, or 410 token_invalid for an unknown, used or
// expired token. With an Idempotency-Key, a retry of a request whose
// answer was lost gets that answer again instead of 410.
func Activate(a *app.App) apigw.Handler {
	return a.API.Handle("Activate", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var b struct {
			Token *string `json:"token"`
		}
		if err := r.Decode(&b); err != nil {
			return nil, err
		}
		if b.Token == nil || *b.Token == "" {
			return nil, licadmin.Invalid("token", "required", "token is required")
		}
		ok := func(v map[string]string) *apigw.Response {
			return &apigw.Response{Status: http.StatusOK, Body: v, Headers: noStore}
		}
		return apigw.Answer(ctx, ok, func() (map[string]string, error) {
			return store.Activated, a.Activation.Activate(ctx, *b.Token)
		})
	}, apigw.Public(), apigw.Idempotent())
}

// SetAlertThreshold serves PATCH /v1/licenses/{tier} {"alertThreshold"}:
// 200 with the pool summary.
func SetAlertThreshold(a *app.App) apigw.Handler {
	return a.API.Handle("SetAlertThreshold", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		tier, err := licadmin.ParseTier("tier", r.Param("tier"))
		if err != nil {
			return nil, licadmin.Errorf(licadmin.ENOTFOUND, "no tier %q: use eco, advanced or pro", r.Param("tier"))
		}
		var b struct {
			AlertThreshold *float64 `json:"alertThreshold"`
		}
		if err := r.Decode(&b); err != nil {
			return nil, err
		}
		if b.AlertThreshold == nil {
			return nil, licadmin.Invalid("alertThreshold", "required", "alertThreshold is required: a whole number from 0 to 1000000")
		}
		v := *b.AlertThreshold
		if v != math.Trunc(v) || v < 0 || v > 1_000_000 {
			return nil, licadmin.Invalid("alertThreshold", "out_of_range", "alertThreshold must be a whole number from 0 to 1000000")
		}
		p, err := a.Licenses.SetAlertThreshold(ctx, r.Request, tier, int64(v))
		if err != nil {
			return nil, err
		}
		return apigw.OK(p)
	}, apigw.Idempotent())
}

// SendActivationEmails serves POST /v1/activation-emails {"userIds":[…]}
// or {"allPending":true} (admin): 202 {"reminderId","status","queued",
// "skipped",…} with the reminder's URL in Location. A list is reminded
// within the request (status done); every pending user in the background
// (status running: GET the Location for the progress).
func SendActivationEmails(a *app.App) apigw.Handler {
	return a.API.Handle("SendActivationEmails", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var in activation.ReminderInput
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		accepted := func(rem *licadmin.Reminder) *apigw.Response {
			return &apigw.Response{Status: http.StatusAccepted, Body: rem, Headers: map[string]string{"Location": "/v1/activation-emails/" + rem.ID}}
		}
		return apigw.Answer(ctx, accepted, func() (*licadmin.Reminder, error) {
			return a.Reminders.Request(ctx, r.Request, in)
		})
	}, apigw.Idempotent())
}

// GetActivationEmails serves GET /v1/activation-emails/{reminderId}
// (admin): a bulk reminder's status and counts so far.
func GetActivationEmails(a *app.App) apigw.Handler {
	return a.API.Handle("GetActivationEmails", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		rem, err := a.Reminders.Get(ctx, r.Request, r.Param("reminderId"))
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Body: rem, Headers: noStore}, nil
	})
}
