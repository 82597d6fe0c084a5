package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

const routeListImports = "GET /v1/imports"

// importPage is the body of GET /v1/imports.
type importPage struct {
	Items      []licadmin.Import `json:"items"`
	NextCursor *string           `json:"nextCursor"`
}

// listImports returns GET /v1/imports as caller with query q.
func (f *importFixture) listImports(t *testing.T, caller string, q map[string]string) importPage {
	t.Helper()
	r := apitest.Do(t, api.ListImports(f.App), apitest.Request{Route: routeListImports, Email: caller, Query: q})
	r.Want(t, http.StatusOK)
	var p importPage
	r.Decode(t, &p)
	return p
}

// dropRecorder counts the rejected drops per reason.
type dropRecorder struct {
	mu      sync.Mutex
	reasons map[string]int
}

func (r *dropRecorder) DropRejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reasons == nil {
		r.reasons = map[string]int{}
	}
	r.reasons[reason]++
}

// TestImportDrop ensures a CSV dropped at drop/{accountId}/{name}.csv, no
// API call first, is imported as an uploaded one (same rows, rules,
// licenses and report), audited with the S3 principal of the event as
// actor; that the same event delivered again and the same object dropped
// again under another name import nothing twice; that GET /v1/imports
// lists it (source drop) with the uploaded ones, newest first; and that,
// when it ends, each admin of the account gets one email in its language
// with the counts and the way to the report.
func TestImportDrop(t *testing.T) {
	f := newImportFixture(t)
	mail := f.WithEmail(t)
	mail.Drain(t)
	// The emulator's mailbox is shared by the package's tests: addresses
	// of this run only.
	tag := fmt.Sprintf("drop%d", time.Now().UnixNano())
	boss := tag + "-boss@dropco.test"
	acct, _ := f.MustAccount(t, "Drop Co", boss)
	f.MustLicenses(t, acct, licadmin.Eco, 1)
	second := apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: "POST /v1/users", Email: boss, Body: map[string]string{
		"email": tag + "-second@dropco.test", "firstName": "Séverine", "lastName": "S", "language": "fr", "role": "admin"}})
	second.Want(t, http.StatusCreated)
	// An uploaded import first, so that the list shows both, newest first.
	uploaded := apitest.Do(t, f.create, apitest.Request{Route: routeImports, Email: boss})
	uploaded.Want(t, http.StatusCreated)
	mail.Drain(t)

	body := "email,first_name,last_name,language,license\n" +
		"ann@dropco.test,Ann,A,en,eco\n" +
		"bob@dropco.test,Bob,B,fr,eco\n" +
		"not-an-email,Cy,C,en,\n" +
		"dee@gmail.com,Dee,D,en,\n"
	key := "drop/" + acct + "/hr export.csv"
	eTag := f.S3.Drop(t, key, body)
	events := f.S3.Uploads(t, 1)
	f.RunImports(t, events...)

	id := importer.DropImportID(acct, eTag)
	imp := f.status(t, boss, id)
	wantCounts(t, imp, licadmin.ImportDone, 4, 3, 1, 1)
	if imp.Source != licadmin.ImportSourceDrop || imp.FileName == nil || *imp.FileName != "hr export.csv" || imp.DryRun {
		t.Fatalf("dropped import %+v, want source drop and file name hr export.csv", imp)
	}
	if got := codes(report(t, imp)); len(got) != 2 || got[0] != "3:bob@dropco.test:"+licadmin.RowNoLicense || got[1] != "4:not-an-email:"+licadmin.RowInvalidEmail {
		t.Fatalf("report %v, want bob's line 3 created without a license and line 4 invalid", got)
	}
	// The other account's admin: as an unknown id.
	wantSameAnswer(t, apitest.Do(t, f.get, apitest.Request{Route: routeImport, Params: map[string]string{"importId": id}, Email: f.other}),
		apitest.Do(t, f.get, apitest.Request{Route: routeImport, Params: map[string]string{"importId": unknownID}, Email: f.other}), id, unknownID)

	// Audited as the S3 principal of the event.
	var chunks, creates int
	for _, a := range f.Env.AuditLog(t, acct) {
		switch a.Action {
		case store.ActionUsersImport:
			chunks++
			if a.Actor != "AWS:LOCAL" || a.Target != id || len(a.Subjects) != 3 {
				t.Errorf("chunk audit record %+v, want the S3 principal AWS:LOCAL creating 3 users", a)
			}
		case store.ActionImportCreate:
			if a.Target == id {
				creates++
				if a.Actor != "AWS:LOCAL" || a.Details["source"] != "drop" {
					t.Errorf("import audit record %+v, want the S3 principal and source drop", a)
				}
			}
		}
	}
	if chunks != 1 || creates != 1 {
		t.Fatalf("%d chunk and %d import audit records, want 1 and 1", chunks, creates)
	}

	// The same event again, and the same object dropped again under
	// another name: nothing new.
	before := len(f.Scan(t))
	f.RunImports(t, events...)
	if again := f.S3.Drop(t, "drop/"+acct+"/copy.csv", body); again != eTag {
		t.Fatalf("the same content has ETag %s, then %s", eTag, again)
	}
	f.RunImports(t, f.S3.Uploads(t, 1)...)
	if after := len(f.Scan(t)); after != before {
		t.Fatalf("the table had %d items, %d after the repeated delivery and drop", before, after)
	}

	// The list: both imports, newest first, paginated.
	p := f.listImports(t, boss, nil)
	if len(p.Items) != 2 || p.Items[0].ID != id || p.Items[0].Source != licadmin.ImportSourceDrop || p.Items[0].ReportURL == nil ||
		p.Items[1].Source != licadmin.ImportSourceAPI || p.Items[1].Status != licadmin.ImportPending || p.NextCursor != nil {
		t.Fatalf("GET /v1/imports: %+v, want the drop then the pending upload", p)
	}
	first := f.listImports(t, boss, map[string]string{"limit": "1"})
	if len(first.Items) != 1 || first.Items[0].ID != id || first.NextCursor == nil {
		t.Fatalf("first page of 1: %+v", first)
	}
	next := f.listImports(t, boss, map[string]string{"limit": "1", "cursor": *first.NextCursor})
	if len(next.Items) != 1 || next.Items[0].Source != licadmin.ImportSourceAPI || next.NextCursor != nil {
		t.Fatalf("second page of 1: %+v", next)
	}
	if other := f.listImports(t, f.other, nil); len(other.Items) != 0 {
		t.Fatalf("the other account lists %d imports, want none", len(other.Items))
	}

	// One email per admin, in its language, after the stream ran.
	mail.Drain(t)
	mail.Drain(t)
	for _, want := range []struct{ to, subject, text string }{
		{boss, "Import of hr export.csv done: 3 users created", "GET /v1/imports/" + id},
		{tag + "-second@dropco.test", "Import de hr export.csv terminé : 3 utilisateurs créés", "Lignes sans utilisateur créé : 1"},
	} {
		// The import took the last eco license: the low-pool alert is
		// another email.
		var got []string
		for _, m := range mail.To(t, want.to) {
			if strings.Contains(m.Subject, "hr export.csv") {
				got = append(got, m.Subject+"\n"+m.Body.Text)
			}
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], want.subject+"\n") || !strings.Contains(got[0], want.text) {
			t.Errorf("%s got the import emails %q, want one %q", want.to, got, want.subject)
		}
	}
	f.Invariants(t)
}

// TestImportDropRejected ensures a dropped file with a malformed key, that
// is not a CSV, or whose key names no account changes nothing, and is
// logged and counted by reason.
func TestImportDropRejected(t *testing.T) {
	f := newImportFixture(t)
	rec := &dropRecorder{}
	f.App.Imports.DropMetrics = rec
	before := f.Scan(t)
	for _, c := range []struct{ key, reason string }{
		{"drop/" + f.acct + ".csv", importer.DropMalformedKey},
		{"drop/" + f.acct + "/sub/dir.csv", importer.DropMalformedKey},
		{"drop/not-an-id!/x.csv", importer.DropMalformedKey},
		{"drop/" + f.acct + "/.csv", importer.DropNotCSV},
		{"drop/" + f.acct + "/notes.txt", importer.DropNotCSV},
		{"drop/01JDQ5A3W7H2K9M4P6R8T0V1XZ/users.csv", importer.DropUnknownAccount},
	} {
		f.S3.Drop(t, c.key, "email,first_name,last_name,language,license\nx@acme.test,X,X,en,\n")
		f.RunImports(t, f.S3.Uploads(t, 1)...)
		if rec.reasons[c.reason] == 0 {
			t.Errorf("%s: not counted as %s (%v)", c.key, c.reason, rec.reasons)
		}
	}
	if got := rec.reasons[importer.DropMalformedKey] + rec.reasons[importer.DropNotCSV] + rec.reasons[importer.DropUnknownAccount]; got != 6 {
		t.Errorf("%d rejections counted, want 6: %v", got, rec.reasons)
	}
	if after := f.Scan(t); len(after) != len(before) {
		t.Fatalf("the table had %d items, %d after the rejected drops", len(before), len(after))
	}
	if n := strings.Count(f.logs.String(), "dropped file rejected"); n != 6 {
		t.Errorf("%d rejections logged, want 6", n)
	}
}

// TestParseDropKey ensures which keys are drops of an account's CSV.
func TestParseDropKey(t *testing.T) {
	for _, c := range []struct {
		key, acct, name string
		csv, ok         bool
	}{
		{"drop/A1/users.csv", "A1", "users.csv", true, true},
		{"drop/A1/Users Export 2026.CSV", "A1", "Users Export 2026.CSV", true, true},
		{"drop/A1/notes.txt", "A1", "notes.txt", false, true},
		{"drop/A1/.csv", "A1", ".csv", false, true},
		{"drop/A1/a/b.csv", "", "", false, false},
		{"drop/A1/", "", "", false, false},
		{"drop/a-1/x.csv", "", "", false, false},
		{"imports/A1/x.csv", "", "", false, false},
		{"drop/A1/x\x01.csv", "", "", false, false},
		{"drop/A1/" + strings.Repeat("x", importer.MaxDropNameLength+1) + ".csv", "", "", false, false},
	} {
		acct, name, csv, ok := importer.ParseDropKey(c.key)
		if acct != c.acct || name != c.name || csv != c.csv || ok != c.ok {
			t.Errorf("ParseDropKey(%q) = %q %q %v %v, want %q %q %v %v", c.key, acct, name, csv, ok, c.acct, c.name, c.csv, c.ok)
		}
	}
}
