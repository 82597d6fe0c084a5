package api

import (
	"bytes"
	"context"
	"net/http"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/logs"
	"licenseadmin/shared/stats"
)

// logPage answers a page of log entries with the cursor of scope.
func logPage(ctx context.Context, a *app.App, r *apigw.Request, list, userID string,
	read func(q logs.Query) ([]licadmin.LogEntry, []byte, error)) (*apigw.Response, error) {
	q := logs.Query{From: r.Query["from"], To: r.Query["to"], Type: r.Query["type"]}
	var err error
	if q.Limit, err = r.Limit(); err != nil {
		return nil, err
	}
	page, err := apigw.ListPage(ctx, a.Cursors, r, r.Email+"\x00"+q.Scope(list, userID), func(after []byte) ([]licadmin.LogEntry, []byte, error) {
		q.After = after
		return read(q)
	})
	if err != nil {
		return nil, err
	}
	return apigw.OK(page)
}

// ListUserLogs serves GET /v1/users/{userId}/logs?from=&to=&type=&limit=&cursor=
// (admin): the user's log entries, newest first.
func ListUserLogs(a *app.App) apigw.Handler {
	return a.API.Handle("ListUserLogs", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		userID := r.Param("userId")
		return logPage(ctx, a, r, "logs", userID, func(q logs.Query) ([]licadmin.LogEntry, []byte, error) {
			return a.Logs.ForUser(ctx, r.Request, userID, q)
		})
	})
}

// ListMyLogs serves GET /v1/me/logs?from=&to=&type=&limit=&cursor= (any
// user): the caller's own log entries, newest first.
func ListMyLogs(a *app.App) apigw.Handler {
	return a.API.Handle("ListMyLogs", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		return logPage(ctx, a, r, "mylogs", "", func(q logs.Query) ([]licadmin.LogEntry, []byte, error) {
			return a.Logs.Mine(ctx, r.Request, q)
		})
	}, apigw.Self())
}

// ExportUserLogs serves POST /v1/users/{userId}/logs/export
// {"from","to","type","format":"csv"} (admin): 202 {"exportId"}, with the
// export's URL in Location; GET /v1/exports/{exportId} tells when it is
// ready.
func ExportUserLogs(a *app.App) apigw.Handler {
	return exportHandler(a, "ExportUserLogs", func(ctx context.Context, r *apigw.Request, in logs.ExportInput) (*logs.Accepted, error) {
		return a.Exports.Request(ctx, r.Request, r.Param("userId"), in)
	})
}

// ExportMyLogs serves POST /v1/me/logs/export {"from","to","type",
// "format":"csv"} (any user, its own journal): answered as ExportUserLogs;
// the export is readable by the caller only.
func ExportMyLogs(a *app.App) apigw.Handler {
	return exportHandler(a, "ExportMyLogs", func(ctx context.Context, r *apigw.Request, in logs.ExportInput) (*logs.Accepted, error) {
		return a.Exports.RequestMine(ctx, r.Request, in)
	}, apigw.Self())
}

// exportHandler decodes an export request's optional body, starts the
// export with start and answers 202 with the export's URL in Location;
// opts add to the route's Idempotent.
func exportHandler(a *app.App, name string, start func(context.Context, *apigw.Request, logs.ExportInput) (*logs.Accepted, error), opts ...apigw.Option) apigw.Handler {
	return a.API.Handle(name, func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		var in logs.ExportInput
		if len(bytes.TrimSpace(r.Body)) > 0 {
			if err := r.Decode(&in); err != nil {
				return nil, err
			}
		}
		accepted := func(x *logs.Accepted) *apigw.Response {
			return &apigw.Response{Status: http.StatusAccepted, Body: x, Headers: map[string]string{"Location": "/v1/exports/" + x.ExportID}}
		}
		return apigw.Answer(ctx, accepted, func() (*logs.Accepted, error) {
			return start(ctx, r, in)
		})
	}, append(opts, apigw.Idempotent())...)
}

// GetExport serves GET /v1/exports/{exportId} (whoever asked for the
// export):
// {"exportId","status":"running|done|failed","url",…}, url a presigned
// GET of the CSV while the export is done.
func GetExport(a *app.App) apigw.Handler {
	return a.API.Handle("GetExport", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		v, err := a.Exports.Get(ctx, r.Request, r.Param("exportId"))
		if err != nil {
			return nil, err
		}
		return &apigw.Response{Status: http.StatusOK, Body: v, Headers: noStore}, nil
	}, apigw.Self())
}

// GetStats serves GET /v1/stats?from=YYYY-MM&to=YYYY-MM&format=json|csv&limit=&cursor=
// (admin): the pool, the user counts and a page of users' usage. As CSV the
// page is one row per user; the next page's cursor is in Next-Cursor.
func GetStats(a *app.App) apigw.Handler {
	return a.API.Handle("GetStats", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		q := stats.Query{From: r.Query["from"], To: r.Query["to"]}
		switch r.Query["format"] {
		case "", "json":
		case "csv":
			q.CSV = true
		default:
			return nil, licadmin.Invalid("format", "unknown_format", "format must be json or csv")
		}
		var err error
		if q.Limit, err = r.Limit(); err != nil {
			return nil, err
		}
		scope := r.Email + "\x00" + q.Scope()
		if q.After, err = a.Cursors.Decode(ctx, scope, r.Query["cursor"]); err != nil {
			return nil, err
		}
		rep, next, err := a.Stats.Account(ctx, r.Request, q)
		if err != nil {
			return nil, err
		}
		if rep.NextCursor, err = a.Cursors.Encode(ctx, scope, next); err != nil {
			return nil, err
		}
		if !q.CSV {
			return apigw.OK(rep)
		}
		var b bytes.Buffer
		if err := stats.WriteCSV(&b, rep); err != nil {
			return nil, err
		}
		h := map[string]string{
			"Content-Type":        "text/csv; charset=utf-8",
			"Content-Disposition": `attachment; filename="stats-` + rep.From + `-` + rep.To + `.csv"`,
		}
		if rep.NextCursor != nil {
			h["Next-Cursor"] = *rep.NextCursor
		}
		return &apigw.Response{Status: http.StatusOK, Raw: b.Bytes(), Headers: h}, nil
	})
}

// GetUserStats serves GET /v1/users/{userId}/stats?from=YYYY-MM&to=YYYY-MM
// (admin): one user's usage for the period, in total and month by month.
func GetUserStats(a *app.App) apigw.Handler {
	return a.API.Handle("GetUserStats", func(ctx context.Context, r *apigw.Request) (*apigw.Response, error) {
		rep, err := a.Stats.User(ctx, r.Request, r.Param("userId"), r.Query["from"], r.Query["to"])
		if err != nil {
			return nil, err
		}
		return apigw.OK(rep)
	})
}
