package api_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"licenseadmin/infra/s3local"
	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

const (
	routeImportTemplate = "GET /v1/imports/template"
	routeImports        = "POST /v1/imports"
	routeImport         = "GET /v1/imports/{importId}"
)

// importFixture is an account (acme.test approved) with 3 eco and 1 pro
// licenses, a second account, and the import handlers.
type importFixture struct {
	*apitest.Env
	admin, acct, other    string
	template, create, get apigw.Handler
	// logs holds the import function's log lines.
	logs *apitest.SyncBuffer
}

func newImportFixture(t *testing.T, optFns ...func(*apitest.Env)) *importFixture {
	t.Helper()
	env := apitest.New(t)
	f := &importFixture{Env: env, admin: "admin@acme.test", other: "boss@globex.test", logs: &apitest.SyncBuffer{}}
	f.acct, _ = env.MustAccount(t, "Acme", f.admin)
	env.MustAccount(t, "Globex", f.other)
	env.MustLicenses(t, f.acct, licadmin.Eco, 3)
	env.MustLicenses(t, f.acct, licadmin.Pro, 1)
	env.App.Imports.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.template, f.create, f.get = api.GetImportTemplate(env.App), api.CreateImport(env.App), api.GetImport(env.App)
	return f
}

// newImport starts an import as caller and returns its upload.
func (f *importFixture) newImport(t *testing.T, caller string, dryRun bool) *importer.Upload {
	t.Helper()
	r := apitest.Do(t, f.create, apitest.Request{Route: routeImports, Email: caller, Body: map[string]bool{"dryRun": dryRun}})
	r.Want(t, http.StatusCreated)
	var up importer.Upload
	r.Decode(t, &up)
	return &up
}

// put uploads body to a presigned URL over HTTP, as curl -T does.
func put(t *testing.T, up *importer.Upload, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, up.UploadURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT upload URL: %d %s", resp.StatusCode, b)
	}
}

// status returns GET /v1/imports/{id} as caller.
func (f *importFixture) status(t *testing.T, caller, id string) *licadmin.Import {
	t.Helper()
	r := apitest.Do(t, f.get, apitest.Request{Route: routeImport, Params: map[string]string{"importId": id}, Email: caller})
	r.Want(t, http.StatusOK)
	var imp licadmin.Import
	r.Decode(t, &imp)
	return &imp
}

// importCSV runs a whole import of body as the fixture's admin: create,
// upload, deliver the S3 event (and every continuation), and returns the
// final status.
func (f *importFixture) importCSV(t *testing.T, body string, dryRun bool) *licadmin.Import {
	t.Helper()
	up := f.newImport(t, f.admin, dryRun)
	put(t, up, body)
	f.RunImports(t, f.S3.Uploads(t, 1)...)
	return f.status(t, f.admin, up.ImportID)
}

// report downloads an import's report through its presigned URL and
// returns its rows, header first.
func report(t *testing.T, imp *licadmin.Import) [][]string {
	t.Helper()
	if imp.ReportURL == nil {
		t.Fatalf("import %s (%s) has no report URL", imp.ID, imp.Status)
	}
	resp, err := http.Get(*imp.ReportURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET report: %d", resp.StatusCode)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || !reflect.DeepEqual(recs[0], []string{"line", "email", "code", "message"}) {
		t.Fatalf("report header %v", recs)
	}
	for _, r := range recs[1:] {
		if r[3] == "" {
			t.Errorf("report row %v has no message", r)
		}
	}
	return recs
}

// codes returns the report rows as "line:email:code", in file order.
func codes(recs [][]string) []string {
	var out []string
	for _, r := range recs[1:] {
		out = append(out, r[0]+":"+r[1]+":"+r[2])
	}
	return out
}

// usersByEmail lists the account's users (every page) by email.
func (f *importFixture) usersByEmail(t *testing.T) map[string]*licadmin.User {
	t.Helper()
	out := map[string]*licadmin.User{}
	var after []byte
	for {
		users, next, err := f.App.Store.ListUsers(context.Background(), f.acct, licadmin.UserFilter{}, 200, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if out[u.Email] != nil {
				t.Fatalf("two users have the email %s", u.Email)
			}
			out[u.Email] = u
		}
		if next == nil {
			return out
		}
		after = next
	}
}

func (f *importFixture) poolOf(t *testing.T) *licadmin.Pool {
	t.Helper()
	p, err := f.App.Store.Pool(context.Background(), f.acct)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantCounts(t *testing.T, imp *licadmin.Import, status licadmin.ImportStatus, rows, created, failed, unlicensed int64) {
	t.Helper()
	if imp.Status != status || imp.Rows != rows || imp.Created != created || imp.Failed != failed || imp.Unlicensed != unlicensed {
		t.Fatalf("import %s rows %d created %d failed %d unlicensed %d (error %+v), want %s %d %d %d %d",
			imp.Status, imp.Rows, imp.Created, imp.Failed, imp.Unlicensed, imp.Error, status, rows, created, failed, unlicensed)
	}
}

// TestImportTemplateRoundTrip ensures the template downloads as text/csv
// with the header of docs/imports.md, and that the template filled in and uploaded as is
// imports its rows.
func TestImportTemplateRoundTrip(t *testing.T) {
	f := newImportFixture(t)
	r := apitest.Do(t, f.template, apitest.Request{Route: routeImportTemplate, Email: f.admin})
	r.Want(t, http.StatusOK)
	if ct := r.Headers["Content-Type"]; !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("Content-Type %q, want text/csv", ct)
	}
	if strings.TrimSpace(r.Body) != "email,first_name,last_name,language,license" {
		t.Fatalf("template %q", r.Body)
	}
	filled := r.Body + "grace@acme.test,Grace,Hopper,fr,pro\r\nalan@acme.test,Alan,Turing,,\r\n"
	imp := f.importCSV(t, filled, false)
	wantCounts(t, imp, licadmin.ImportDone, 2, 2, 0, 0)
	users := f.usersByEmail(t)
	g, a := users["grace@acme.test"], users["alan@acme.test"]
	if g == nil || g.FirstName != "Grace" || g.LastName != "Hopper" || g.Language != "fr" || g.License == nil || g.License.Tier != licadmin.Pro ||
		g.Role != licadmin.RoleUser || g.Status != licadmin.StatusPending {
		t.Fatalf("grace = %+v", g)
	}
	if a == nil || a.Language != "en" || a.License != nil {
		t.Fatalf("alan = %+v, want language en and no license", a)
	}
	if got := codes(report(t, imp)); len(got) != 0 {
		t.Fatalf("report rows %v, want none", got)
	}
	// Plain users may not download it.
	apitest.Do(t, f.template, apitest.Request{Route: routeImportTemplate, Email: "alan@acme.test"}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.Invariants(t)
}

// TestImportEndToEnd ensures the whole flow: POST /v1/imports answers 201
// with a 15-minute presigned PUT for imports/{accountId}/{importId}.csv;
// the import is pending until a real HTTP PUT to that URL, whose S3 event
// imports the rows; then GET shows done with its counters and a report URL
// that downloads; licenses come from the pool; each user is audited with
// the import id and the admin as actor.
func TestImportEndToEnd(t *testing.T) {
	f := newImportFixture(t)
	before := time.Now()
	up := f.newImport(t, f.admin, false)
	if !strings.Contains(up.UploadURL, "/"+apitest.ImportBucket+"/imports/"+f.acct+"/"+up.ImportID+".csv?") || !strings.Contains(up.UploadURL, "X-Amz-Signature=") {
		t.Fatalf("upload URL %s, want a presigned URL of imports/%s/%s.csv", up.UploadURL, f.acct, up.ImportID)
	}
	if up.ExpiresAt.Before(before.Add(14*time.Minute)) || up.ExpiresAt.After(time.Now().Add(15*time.Minute)) || up.Method != "PUT" ||
		up.Headers["Content-Type"] != "text/csv" || up.MaxBytes < 50<<20 {
		t.Fatalf("upload %+v", up)
	}
	imp := f.status(t, f.admin, up.ImportID)
	if imp.Status != licadmin.ImportPending || imp.ReportURL != nil || imp.DryRun || imp.BytesRead != nil || imp.BytesTotal != nil {
		t.Fatalf("before upload: %+v", imp)
	}
	put(t, up, "email,first_name,last_name,language,license\n"+
		"a@acme.test,A,A,en,eco\nb@gmail.com,B,B,fr,eco\nc@acme.test,C,C,en,pro\nd@acme.test,D,D,en,\n")
	events := f.S3.Uploads(t, 1)
	if n := f.RunImports(t, events...); n != 1 {
		t.Fatalf("%d invocations, want 1", n)
	}
	imp = f.status(t, f.admin, up.ImportID)
	wantCounts(t, imp, licadmin.ImportDone, 4, 4, 0, 0)
	if got := codes(report(t, imp)); len(got) != 0 {
		t.Fatalf("report %v", got)
	}
	pool := f.poolOf(t)
	wantPool(t, *pool, licadmin.Eco, 3, 2)
	wantPool(t, *pool, licadmin.Pro, 1, 1)
	users := f.usersByEmail(t)
	audits := f.Env.AuditLog(t, f.acct)
	// One record for the chunk, naming each user it created.
	var chunks []store.Audit
	for _, a := range audits {
		if a.Action == store.ActionUsersImport {
			chunks = append(chunks, a)
		}
	}
	if len(chunks) != 1 {
		t.Fatalf("%d %s audit records, want 1 for the one chunk: %+v", len(chunks), store.ActionUsersImport, chunks)
	}
	a := chunks[0]
	if a.Target != up.ImportID || a.Actor != f.admin || a.SourceIP != sourceIP || a.Details["importId"] != up.ImportID ||
		a.Details["created"] != "4" || a.Details["firstLine"] != "2" || a.Details["lastLine"] != "5" || len(a.Subjects) != 4 {
		t.Fatalf("chunk audit record %+v", a)
	}
	for i, want := range []struct{ email, tier string }{{"a@acme.test", "eco"}, {"b@gmail.com", "eco"}, {"c@acme.test", "pro"}, {"d@acme.test", ""}} {
		u := users[want.email]
		if u == nil {
			t.Fatalf("%s was not created", want.email)
		}
		sub := a.Subjects[i]
		if sub["userId"] != u.ID || sub["email"] != want.email || sub["line"] != strconv.Itoa(i+2) || sub["tier"] != want.tier || sub["role"] != "user" {
			t.Errorf("audit subject %d = %v, want %s (%s) line %d tier %q", i, sub, want.email, u.ID, i+2, want.tier)
		}
	}
	if hasAction(audits, store.ActionUserCreate) {
		t.Errorf("a %s audit record per imported user: the chunk's record names them", store.ActionUserCreate)
	}
	if !hasAction(audits, store.ActionImportCreate) {
		t.Errorf("no %s audit record", store.ActionImportCreate)
	}
	f.Invariants(t)
}

// TestImportConfirmsLicenses ensures an import emails each user it gave a
// license to, once, in the user's language, as assigning one does (docs/api.md):
// the chunk's audit record, read from the table's stream, queues the
// confirmations. A user created without a license (none left of its tier,
// or none asked) gets none, and the stream record handled twice queues
// nothing new.
func TestImportConfirmsLicenses(t *testing.T) {
	f := newImportFixture(t)
	mail := f.WithEmail(t)
	mail.Drain(t)
	// The emulator's mailbox is shared by the package's tests: addresses
	// of this run only.
	tag := fmt.Sprintf("conf%d", time.Now().UnixNano())
	addr := func(name, domain string) string { return tag + "-" + name + "@" + domain }
	imp := f.importCSV(t, "email,first_name,last_name,language,license\n"+
		addr("ann", "acme.test")+",Ann,A,en,eco\n"+
		addr("bea", "gmail.com")+",Béa,B,fr,pro\n"+
		addr("cy", "acme.test")+",Cy,C,en,\n"+
		addr("di", "acme.test")+",Di,D,en,pro\n", false)
	wantCounts(t, imp, licadmin.ImportDone, 4, 4, 0, 1)

	recs := mail.Next(t)
	for range 2 {
		resp, err := f.App.Stream.Handle(apitest.AsFunction(context.Background(), apitest.StreamFunction), events.DynamoDBEvent{Records: recs})
		if err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatalf("handle the import's stream records: %+v %v", resp, err)
		}
	}
	mail.Drain(t)
	for _, want := range []struct{ name, domain, subject, greeting string }{
		{"ann", "acme.test", "Your Eco license is ready", "Hello Ann"},
		{"bea", "gmail.com", "Une licence Pro vous est attribuée", "Bonjour Béa"},
	} {
		got := mail.To(t, addr(want.name, want.domain))
		if len(got) != 1 || got[0].Subject != want.subject || !strings.Contains(got[0].Body.Text, want.greeting) {
			t.Errorf("%s got %d emails %+v, want one %q", want.name, len(got), got, want.subject)
		}
	}
	for _, name := range []string{"cy", "di"} {
		if got := mail.To(t, addr(name, "acme.test")); len(got) != 0 {
			t.Errorf("%s, created without a license, got %d emails", name, len(got))
		}
	}
	n := 0
	for _, it := range f.Scan(t) {
		if o := store.OutboxFromImage(it); o != nil && o.Kind == licadmin.EmailLicenseAssigned && strings.HasPrefix(o.Email, tag) {
			n++
			if o.Status != store.OutboxSent {
				t.Errorf("confirmation to %s is %s, want sent", o.Email, o.Status)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d license confirmations queued for the import's two licenses", n)
	}
	f.Invariants(t)
}

func hasAction(recs []store.Audit, action string) bool {
	for _, a := range recs {
		if a.Action == action {
			return true
		}
	}
	return false
}

// TestImportRowCodes ensures each kind of bad row is reported with its line
// and contract-style code while the good rows are imported: a row asking for a
// tier the pool has run out of creates the user without a license.
func TestImportRowCodes(t *testing.T) {
	f := newImportFixture(t)
	f.MustAccount(t, "Initech", "bill@initech.test")
	existing := "taken@acme.test"
	apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody(existing, "user")}).Want(t, http.StatusCreated)
	f.App.Imports.ChunkRows = 4 // duplicates across chunks too
	body := "email,first_name,last_name,language,license\n" +
		"ok1@acme.test,Ok,One,en,eco\n" + // 2
		"not-an-email,Bad,Email,en,\n" + // 3
		"x@initech.test,Other,Domain,en,\n" + // 4
		"x@unknown.test,Unknown,Domain,en,\n" + // 5
		"TAKEN@acme.test,Taken,Email,en,\n" + // 6
		"ok1@acme.test,Dup,Later,en,\n" + // 7 duplicate across chunks
		"tier@acme.test,Bad,Tier,en,gold\n" + // 8
		",No,Email,en,\n" + // 9
		"nofirst@acme.test,,Last,en,\n" + // 10
		"lang@acme.test,Bad,Lang,de,\n" + // 11
		"enc@acme.test,Ad\xe9le,Enc,en,\n" + // 12
		"quote@acme.test,Bo\"b,Quote,en,\n" + // 13
		"extra@acme.test,Too,Many,en,,surplus\n" + // 14
		"long@acme.test," + strings.Repeat("n", 101) + ",Name,en,\n" + // 15
		"pro1@acme.test,Pro,One,en,pro\n" + // 16
		"pro2@acme.test,Pro,Two,en,PRO\n" + // 17 no pro left
		"admin@acme.test,Me,Myself,en,\n" + // 18 the admin's own email
		"dup@acme.test,Dup,First,en,\n" + // 19
		"DUP@acme.test,Dup,Same chunk,en,\n" + // 20 duplicate in the same chunk
		"\n" +
		"ok2@gmail.com,Ok,Two,fr,none\n" // 22
	imp := f.importCSV(t, body, false)
	want := []string{
		"3:not-an-email:invalid_email",
		"4:x@initech.test:domain_not_approved",
		"5:x@unknown.test:domain_not_approved",
		"6:taken@acme.test:email_taken",
		"7:ok1@acme.test:duplicate_in_file",
		"8:tier@acme.test:unknown_tier",
		"9::missing_field",
		"10:nofirst@acme.test:missing_field",
		"11:lang@acme.test:unknown_language",
		"12:enc@acme.test:bad_encoding",
		"13::malformed_row",
		"14:extra@acme.test:too_many_fields",
		"15:long@acme.test:invalid_name",
		"17:pro2@acme.test:no_license_available",
		"18:admin@acme.test:email_taken",
		"20:dup@acme.test:duplicate_in_file",
	}
	if got := codes(report(t, imp)); !reflect.DeepEqual(got, want) {
		t.Fatalf("report\n got %q\nwant %q", got, want)
	}
	wantCounts(t, imp, licadmin.ImportDone, 20, 5, 15, 1)
	users := f.usersByEmail(t)
	for email, tier := range map[string]licadmin.Tier{"ok1@acme.test": licadmin.Eco, "pro1@acme.test": licadmin.Pro, "pro2@acme.test": "", "dup@acme.test": "", "ok2@gmail.com": ""} {
		u := users[email]
		switch {
		case u == nil:
			t.Errorf("%s was not created", email)
		case tier == "" && u.License != nil, tier != "" && (u.License == nil || u.License.Tier != tier):
			t.Errorf("%s has license %+v, want %q", email, u.License, tier)
		}
	}
	if u := users["dup@acme.test"]; u != nil && u.LastName != "First" {
		t.Errorf("the duplicate row replaced the first: %+v", u)
	}
	if n := len(users); n != 1+1+5 { // admin, taken, and the 5 imported
		t.Errorf("%d users, want 7", n)
	}
	f.Invariants(t)
}

// TestImportFormats ensures the files spreadsheets export are imported
// alike: BOM, semicolons, quoted fields holding delimiters, quotes and line
// breaks, CRLF line ends, blank lines, header names in other cases; and
// that line numbers count the lines of a quoted line break.
func TestImportFormats(t *testing.T) {
	f := newImportFixture(t)
	cases := []struct {
		name, body string
		email      string
		report     []string
	}{
		{"BOM comma LF", "\ufeffemail,first_name,last_name,language,license\nbom@acme.test,\"Anne, Marie\",\"O\"\"Neil\",fr,\n",
			"bom@acme.test", nil},
		{"semicolon CRLF", "EMAIL;First_Name;Last_Name;Language;License\r\nsemi@acme.test;Anne, Marie;\"O\"\"Neil\";fr;\r\n",
			"semi@acme.test", nil},
		{"BOM semicolon no final line end", "\ufeffemail;first_name;last_name\r\nnoeol@acme.test;\"Anne, Marie\";\"O\"\"Neil\"",
			"noeol@acme.test", nil},
		{"quoted line break and blank lines", "email,first_name,last_name\r\n\r\n\"ml@acme.test\",\"Anne, Marie\",\"O\"\"Neil\"\r\n,,\r\n" +
			"\"break@acme.test\",\"Line\r\nBreak\",\"X\"\r\n\"bad\",\"after\",\"break\"\r\n",
			"ml@acme.test", []string{"5:break@acme.test:invalid_name", "7:bad:invalid_email"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imp := f.importCSV(t, c.body, false)
			if got := codes(report(t, imp)); !reflect.DeepEqual(got, c.report) && len(got)+len(c.report) > 0 {
				t.Fatalf("report %v, want %v", got, c.report)
			}
			if imp.Status != licadmin.ImportDone || imp.Created != 1 {
				t.Fatalf("import %+v", imp)
			}
			u := f.usersByEmail(t)[c.email]
			if u == nil || u.FirstName != "Anne, Marie" || u.LastName != `O"Neil` {
				t.Fatalf("%s = %+v", c.email, u)
			}
		})
	}
	f.Invariants(t)
}

// TestImportSameEventThreeTimes ensures rule 11: the same S3 event
// delivered three times, one after the other or all at once, and a second
// upload of the same import's file, create each user once.
func TestImportSameEventThreeTimes(t *testing.T) {
	f := newImportFixture(t)
	body := "email,first_name,last_name,language,license\n"
	for i := range 30 {
		body += fmt.Sprintf("u%02d@acme.test,U,%d,en,eco\n", i, i)
	}
	t.Run("sequential", func(t *testing.T) {
		up := f.newImport(t, f.admin, false)
		put(t, up, body)
		ev := f.S3.Uploads(t, 1)[0]
		f.RunImports(t, ev, ev, ev)
		wantCounts(t, f.status(t, f.admin, up.ImportID), licadmin.ImportDone, 30, 30, 0, 27)
		// The same file uploaded again to the same URL: a new object
		// version, ignored.
		put(t, up, body+"late@acme.test,Late,Comer,en,\n")
		f.RunImports(t, f.S3.Uploads(t, 1)...)
		wantCounts(t, f.status(t, f.admin, up.ImportID), licadmin.ImportDone, 30, 30, 0, 27)
		if f.usersByEmail(t)["late@acme.test"] != nil {
			t.Fatal("a second upload of an import's file was imported")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		f.App.Imports.ChunkRows = 5
		up := f.newImport(t, f.admin, false)
		put(t, up, strings.ReplaceAll(body, "@acme.test", "-c@gmail.com"))
		ev := f.S3.Uploads(t, 1)[0]
		apitest.Concurrently(3, func(int) {
			if err := f.Deliver(ev); err != nil {
				t.Error(err)
			}
		})
		f.RunImports(t)
		imp := f.status(t, f.admin, up.ImportID)
		if imp.Status != licadmin.ImportDone {
			// The invocations that lost the race left it to the winner.
			t.Fatalf("import %+v", imp)
		}
		wantCounts(t, imp, licadmin.ImportDone, 30, 30, 0, 30)
	})
	if n := len(f.usersByEmail(t)); n != 61 {
		t.Fatalf("%d users, want 61 (the admin and 60 imported)", n)
	}
	f.Invariants(t)
}

// TestImportConcurrentSmallPool ensures rule 1 across imports: two imports
// of the same account running at once, each asking for more licenses than
// the pool holds, never take more than the pool; the users beyond it are
// created without a license and reported.
func TestImportConcurrentSmallPool(t *testing.T) {
	f := newImportFixture(t)
	f.App.Imports.ChunkRows = 3
	var events [][]byte
	var ids []string
	for i := range 2 {
		up := f.newImport(t, f.admin, false)
		ids = append(ids, up.ImportID)
		body := "email,first_name,last_name,license\n"
		for j := range 10 {
			body += fmt.Sprintf("i%d-%d@acme.test,I,%d,eco\n", i, j, j)
		}
		put(t, up, body)
		events = append(events, f.S3.Uploads(t, 1)...)
	}
	apitest.Concurrently(len(events), func(i int) {
		if err := f.Deliver(events[i]); err != nil {
			t.Error(err)
		}
	})
	var licensed, unlicensed int64
	for _, id := range ids {
		imp := f.status(t, f.admin, id)
		if imp.Status != licadmin.ImportDone || imp.Created != 10 {
			t.Fatalf("import %+v", imp)
		}
		unlicensed += imp.Unlicensed
		licensed += imp.Created - imp.Unlicensed
	}
	if licensed != 3 || unlicensed != 17 {
		t.Fatalf("%d users got a license and %d did not, want 3 and 17", licensed, unlicensed)
	}
	wantPool(t, *f.poolOf(t), licadmin.Eco, 3, 3)
	f.Invariants(t)
}

// TestImportContinuation ensures a file larger than one invocation's time
// budget is imported across fresh invocations: each commits at least one
// chunk with its checkpoint and asks for a continuation; progress shows
// while it runs; an S3 event redelivered in the middle takes over the
// released import without creating anything twice; a continuation
// delivered twice changes nothing.
func TestImportContinuation(t *testing.T) {
	f := newImportFixture(t)
	f.App.Imports.MaxRunTime = time.Nanosecond // one step per invocation
	f.App.Imports.ChunkRows = 4
	meter := &importRecorder{}
	f.App.Imports.Metrics = meter
	const rows = 37
	body := "email;first_name;last_name;license\r\n"
	for i := range rows {
		lic := ""
		if i%10 == 0 {
			lic = "eco"
		}
		body += fmt.Sprintf("c%02d@acme.test;\"First; %d\";Last;%s\r\n", i, i, lic)
	}
	up := f.newImport(t, f.admin, false)
	put(t, up, body)
	ev := f.S3.Uploads(t, 1)[0]
	deliver := func(payload []byte) {
		t.Helper()
		if err := f.Deliver(payload); err != nil {
			t.Fatal(err)
		}
	}
	deliver(ev)
	invocations := 1
	var last, lastBytes int64
	for round := 0; ; round++ {
		next := f.S3.Continuations()
		if len(next) == 0 {
			break
		}
		imp := f.status(t, f.admin, up.ImportID)
		if imp.Status != licadmin.ImportRunning || imp.Rows < last || imp.Rows > rows {
			t.Fatalf("between invocations: %+v (rows before %d)", imp, last)
		}
		// The bytes read advance with the rows, within the file.
		if imp.BytesRead == nil || imp.BytesTotal == nil || *imp.BytesTotal != int64(len(body)) ||
			*imp.BytesRead < lastBytes || *imp.BytesRead > *imp.BytesTotal || (imp.Rows > 0) != (*imp.BytesRead > 0) {
			t.Fatalf("between invocations: bytesRead %v bytesTotal %v (before %d, file %d bytes, rows %d)", imp.BytesRead, imp.BytesTotal, lastBytes, len(body), imp.Rows)
		}
		last, lastBytes = imp.Rows, *imp.BytesRead
		for i, c := range next {
			payload, _ := json.Marshal(c)
			if round == 2 && i == 0 {
				// The original event again: it takes the released import
				// over and goes on from the checkpoint.
				deliver(ev)
				invocations++
			}
			deliver(payload)
			invocations++
			if round == 4 && i == 0 {
				deliver(payload) // a continuation delivered twice
				invocations++
			}
		}
		if round > 100 {
			t.Fatal("the import does not advance")
		}
	}
	imp := f.status(t, f.admin, up.ImportID)
	wantCounts(t, imp, licadmin.ImportDone, rows, rows, 0, 1)
	if lastBytes == 0 || imp.BytesRead == nil || imp.BytesTotal == nil || *imp.BytesRead != int64(len(body)) || *imp.BytesTotal != int64(len(body)) {
		t.Fatalf("done: bytesRead %v bytesTotal %v, want both %d (progress seen while running: %d)", imp.BytesRead, imp.BytesTotal, len(body), lastBytes)
	}
	if invocations < rows/4 {
		t.Fatalf("%d invocations for %d rows in chunks of 4: the budget was not enforced", invocations, rows)
	}
	// Each invocation reports its own rows: together, the import's.
	if meter.rows != rows || meter.failed != 0 || meter.negative || meter.dryRun || len(meter.accounts) != 1 || !meter.accounts[f.acct] || meter.calls < rows/4 {
		t.Fatalf("import metrics %+v: want %d rows over at least %d invocations, none failed, of account %s", meter, rows, rows/4, f.acct)
	}
	users := f.usersByEmail(t)
	if u := users["c36@acme.test"]; u == nil || u.FirstName != "First; 36" {
		t.Fatalf("last row's user %+v", u)
	}
	if records := f.wantImportAudited(t, up.ImportID, 4); records < rows/4 {
		t.Errorf("%d chunk audit records for %d rows in chunks of 4", records, rows)
	}
	f.Invariants(t)
}

// wantImportAudited checks rule 8 of docs/api.md for an import: every user of the
// account but the admin is a subject of exactly one of the import's chunk
// records (at most chunkRows users each, as many as the record says it
// created), however often events were delivered or transactions retried.
// It returns the number of chunk records.
func (f *importFixture) wantImportAudited(t *testing.T, importID string, chunkRows int) int {
	t.Helper()
	users := f.usersByEmail(t)
	audited := map[string]int{}
	records := 0
	for _, a := range f.Env.AuditLog(t, f.acct) {
		if a.Action != store.ActionUsersImport {
			continue
		}
		records++
		if n, _ := strconv.Atoi(a.Details["created"]); n != len(a.Subjects) || n > chunkRows || a.Target != importID || a.Actor != f.admin {
			t.Errorf("chunk audit record %+v: want the admin's, of import %s, at most %d users (one chunk), as many subjects as created", a, importID, chunkRows)
		}
		for _, sub := range a.Subjects {
			audited[sub["email"]]++
			if u := users[sub["email"]]; u == nil || u.ID != sub["userId"] {
				t.Errorf("audit subject %v is not a created user", sub)
			}
		}
	}
	for email := range users {
		if email != f.admin && audited[email] != 1 {
			t.Errorf("%s is in %d chunk audit records, want 1", email, audited[email])
		}
	}
	return records
}

// TestImportDryRun ensures a dry run validates every row against the
// current state (taken emails, domains, duplicates across chunks, the
// licenses left) and writes the same report a real run would, and changes
// nothing: no user, claim, license or audit record.
func TestImportDryRun(t *testing.T) {
	f := newImportFixture(t)
	f.App.Imports.ChunkRows = 2
	body := "email,first_name,last_name,language,license\n" +
		"a@acme.test,A,A,en,eco\nb@acme.test,B,B,en,eco\nc@acme.test,C,C,en,eco\nd@acme.test,D,D,en,eco\n" +
		"a@acme.test,Dup,A,en,\nadmin@acme.test,Me,Me,en,\nx@unknown.test,X,X,en,\nbad,Bad,Bad,en,\n"
	before := accountState(t, f.Env, f.acct)
	dry := f.importCSV(t, body, true)
	if !dry.DryRun {
		t.Fatal("dryRun not shown")
	}
	wantCounts(t, dry, licadmin.ImportDone, 8, 4, 4, 1)
	dryReport := codes(report(t, dry))
	after := accountState(t, f.Env, f.acct)
	for k := range after {
		if strings.Contains(k, "IMPORT#") || strings.Contains(k, "AUDIT#") && strings.Contains(after[k], store.ActionImportCreate) {
			delete(after, k) // the import itself and its creation's audit record
		}
	}
	if !reflect.DeepEqual(after, before) {
		for k, v := range after {
			if before[k] != v {
				t.Errorf("dry run changed %s: %s", k, v)
			}
		}
		t.FailNow()
	}
	real := f.importCSV(t, body, false)
	wantCounts(t, real, licadmin.ImportDone, 8, 4, 4, 1)
	if got := codes(report(t, real)); !reflect.DeepEqual(got, dryReport) {
		t.Fatalf("the dry run's report %v differs from the real run's %v", dryReport, got)
	}
	f.Invariants(t)
}

// TestImportRejectedObjects ensures that only the file of an import the
// account created is imported: an object under another account's prefix,
// an unknown import id, a key of another shape, or another bucket's event
// is refused and logged, and creates nothing.
func TestImportRejectedObjects(t *testing.T) {
	f := newImportFixture(t)
	globex := f.MustCaller(t, f.other).AccountID
	mine := f.newImport(t, f.admin, false)
	client := f.S3.Client()
	body := "email,first_name,last_name\nintruder@gmail.com,In,Truder\n"
	upload := func(key string) {
		_, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(apitest.ImportBucket), Key: aws.String(key),
			Body: strings.NewReader(body), ContentType: aws.String("text/csv")})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{
		importer.ImportKey(globex, mine.ImportID),            // another account's prefix, my import id
		importer.ImportKey(f.acct, "01JUNKNOWNIMPORT"),       // unknown id
		"imports/" + f.acct + "/" + mine.ImportID + "/x.csv", // not the key shape
	} {
		upload(key)
	}
	f.RunImports(t, f.S3.Uploads(t, 3)...)
	otherBucket := s3local.Event("ObjectCreated:Put", "elsewhere", importer.ImportKey(f.acct, mine.ImportID), 10, "abc", "", "127.0.0.1", time.Now())
	f.RunImports(t, otherBucket)
	if imp := f.status(t, f.admin, mine.ImportID); imp.Status != licadmin.ImportPending {
		t.Fatalf("import %+v, want still pending", imp)
	}
	if f.usersByEmail(t)["intruder@gmail.com"] != nil {
		t.Fatal("a rejected object was imported")
	}
	logs := f.logs.String()
	for _, want := range []string{"the account of the key has no import with this id", "the key is not imports/{accountId}/{importId}.csv", "not the import bucket"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line %q in:\n%s", want, logs)
		}
	}
}

// TestImportFileFailures ensures a file that cannot be imported fails its
// import with a clear code and reason, after importing the rows before
// the problem, and that its report says where it stopped.
func TestImportFileFailures(t *testing.T) {
	f := newImportFixture(t)
	cases := []struct {
		name, body string
		code       string
		created    int64
	}{
		{"missing column", "email,name\nx@acme.test,X\n", "missing_column", 0},
		{"empty file", "", "empty_file", 0},
		{"spreadsheet", "PK\x03\x04binary", "not_csv", 0},
		{"unterminated quote", "email,first_name,last_name\nok@acme.test,Ok,Ok\nbad@acme.test,\"Bad,Bad\n" + strings.Repeat("r@acme.test,R,R\n", 12000), "record_too_long", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imp := f.importCSV(t, c.body, false)
			if imp.Status != licadmin.ImportFailed || imp.Error == nil || imp.Error.Code != c.code || imp.Error.Message == "" || imp.Created != c.created {
				t.Fatalf("import %+v (error %+v), want failed with %s after %d users", imp, imp.Error, c.code, c.created)
			}
			rep := codes(report(t, imp))
			if len(rep) != 1 || !strings.HasSuffix(rep[0], ":"+c.code) {
				t.Fatalf("report %v, want the line where the file stopped", rep)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		f.App.Imports.MaxFileBytes = 64
		defer func() { f.App.Imports.MaxFileBytes = 0 }()
		imp := f.importCSV(t, "email,first_name,last_name\n"+strings.Repeat("big@acme.test,B,B\n", 10), false)
		if imp.Status != licadmin.ImportFailed || imp.Error == nil || imp.Error.Code != importer.CodeFileTooLarge || imp.Rows != 0 {
			t.Fatalf("import %+v (error %+v)", imp, imp.Error)
		}
	})
	t.Run("replaced during the import", func(t *testing.T) {
		f.App.Imports.MaxRunTime, f.App.Imports.ChunkRows = time.Nanosecond, 1
		defer func() { f.App.Imports.MaxRunTime, f.App.Imports.ChunkRows = 0, 0 }()
		up := f.newImport(t, f.admin, false)
		put(t, up, "email,first_name,last_name\nr1@acme.test,R,1\nr2@acme.test,R,2\n")
		first := f.S3.Uploads(t, 1)
		if err := f.Deliver(first[0]); err != nil {
			t.Fatal(err)
		}
		put(t, up, "email,first_name,last_name\nother@acme.test,O,O\n")
		f.RunImports(t, f.S3.Uploads(t, 1)...) // ignored: the import reads the first upload
		f.RunImports(t)
		imp := f.status(t, f.admin, up.ImportID)
		if imp.Status != licadmin.ImportFailed || imp.Error == nil || imp.Error.Code != importer.CodeFileChanged || imp.Created != 1 {
			t.Fatalf("import %+v (error %+v)", imp, imp.Error)
		}
	})
	f.Invariants(t)
}

// TestImportAccess ensures only admins create and read imports, that an
// import of another account answers exactly like an unknown id, and that
// POST /v1/imports honours Idempotency-Key.
func TestImportAccess(t *testing.T) {
	f := newImportFixture(t)
	plain := "plain@acme.test"
	apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody(plain, "user")}).Want(t, http.StatusCreated)
	apitest.Do(t, f.create, apitest.Request{Route: routeImports, Email: plain, Body: map[string]bool{"dryRun": false}}).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	apitest.Do(t, f.create, apitest.Request{Route: routeImports, Email: f.admin, Body: map[string]any{"dryRun": "yes"}}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	apitest.Do(t, f.create, apitest.Request{Route: routeImports, Email: f.admin, Body: map[string]any{"dry": true}}).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	// An empty body is {"dryRun":false}.
	r := apitest.Do(t, f.create, apitest.Request{Route: routeImports, Email: f.admin})
	r.Want(t, http.StatusCreated)
	var up importer.Upload
	r.Decode(t, &up)
	if r.Headers["Location"] != "/v1/imports/"+up.ImportID {
		t.Fatalf("Location %q", r.Headers["Location"])
	}
	get := func(caller, id string) *apitest.Response {
		return apitest.Do(t, f.get, apitest.Request{Route: routeImport, Params: map[string]string{"importId": id}, Email: caller})
	}
	get(plain, up.ImportID).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	foreign := get(f.other, up.ImportID)
	foreign.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	wantSameAnswer(t, foreign, get(f.other, unknownID), up.ImportID, unknownID)

	// Idempotency-Key: the retry answers the same import, once.
	req := apitest.Request{Route: routeImports, Email: f.admin, Body: map[string]bool{"dryRun": true}, Headers: idemKey("import-1")}
	first := apitest.Do(t, f.create, req)
	first.Want(t, http.StatusCreated)
	wantReplay(t, first, apitest.Do(t, f.create, req))
	n := 0
	for _, a := range f.Env.AuditLog(t, f.acct) {
		if a.Action == store.ActionImportCreate {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d import.create audit records, want 2", n)
	}
}

// TestImportFaults ensures an invocation interrupted by DynamoDB failures
// (a lost response, a failed write) leaves a state that Lambda's retry of
// the same event completes without creating anything twice.
func TestImportFaults(t *testing.T) {
	failures := 0
	var mu sync.Mutex
	armed := false
	opt, _ := apitest.Faults(func(op string, n int) apitest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if op != "TransactWriteItems" || !armed {
			return apitest.NoFault
		}
		switch {
		case n%5 == 2:
			return apitest.LostResponse
		case n%7 == 3 && failures < 3:
			failures++
			return apitest.Fail
		}
		return apitest.NoFault
	})
	env := apitest.New(t, opt)
	f := &importFixture{Env: env, admin: "admin@acme.test", logs: &apitest.SyncBuffer{}}
	f.acct, _ = env.MustAccount(t, "Acme", f.admin)
	env.MustLicenses(t, f.acct, licadmin.Eco, 5)
	env.App.Imports.Logger = slog.New(slog.NewJSONHandler(f.logs, nil))
	f.create, f.get = api.CreateImport(env.App), api.GetImport(env.App)
	env.App.Imports.ChunkRows = 3
	body := "email,first_name,last_name,license\n"
	for i := range 20 {
		body += fmt.Sprintf("f%02d@acme.test,F,%d,eco\n", i, i)
	}
	up := f.newImport(t, f.admin, false)
	put(t, up, body)
	ev := f.S3.Uploads(t, 1)[0]
	mu.Lock()
	armed = true
	mu.Unlock()
	for attempt := 0; ; attempt++ {
		err := env.Deliver(ev) // Lambda retries a failed invocation with the same event
		if err == nil {
			break
		}
		if attempt > 10 {
			t.Fatalf("still failing after %d retries: %v", attempt, err)
		}
	}
	imp := f.status(t, f.admin, up.ImportID)
	wantCounts(t, imp, licadmin.ImportDone, 20, 20, 0, 15)
	f.wantImportAudited(t, up.ImportID, 3)
	env.Invariants(t)
}

// TestImportLookupOnlyAfterRefusals ensures a real import reads nothing
// before its transactions while its rows pass (the transaction checks
// them), looks rows up only after a chunk had rows refused, and goes back
// to no reads once a lookup finds nothing to refuse; the report is the
// same either way.
func TestImportLookupOnlyAfterRefusals(t *testing.T) {
	f := newImportFixture(t)
	apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("taken@acme.test", "user")}).Want(t, http.StatusCreated)
	opt, calls := apitest.Faults(nil)
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	f.App.Imports.ChunkRows = 3
	rows := func(from, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "r%02d@acme.test,R,%d,en,\n", from+i, from+i)
		}
		return b.String()
	}
	const header = "email,first_name,last_name,language,license\n"
	tests := []struct {
		name    string
		body    string
		lookups int
		failed  int64
	}{
		{"clean", header + rows(0, 9), 0, 0},
		// Chunk 1 has a taken email: refused in its transaction; chunk 2
		// is looked up and clean; chunk 3 is not looked up.
		{"one taken email", header + rows(10, 2) + "taken@acme.test,T,T,en,\n" + rows(12, 6), 1, 1},
	}
	for _, tt := range tests {
		calls.Reset()
		imp := f.importCSV(t, tt.body, false)
		if imp.Status != licadmin.ImportDone || imp.Failed != tt.failed || imp.Created != imp.Rows-tt.failed {
			t.Fatalf("%s: import %+v, want done with %d failed", tt.name, imp, tt.failed)
		}
		if got := calls.Get("BatchGetItem"); got != tt.lookups {
			t.Errorf("%s: %d BatchGetItem lookups, want %d", tt.name, got, tt.lookups)
		}
	}
	f.Invariants(t)
}
