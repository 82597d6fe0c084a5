package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"licenseadmin/infra/stack"
	"licenseadmin/shared/apitest"
)

// TestRunImport ensures the bulk import walk-through of docs/imports.md works on the
// stack `run` starts: the template downloads; POST /v1/imports gives a
// presigned URL of the local S3; a plain HTTP PUT of a CSV to it (curl -T)
// starts the import function as S3's notification would; GET shows it done
// with its counters; the report downloads from its presigned URL; a CSV
// PUT at drop/{accountId}/{name}.csv starts an import too, which GET
// /v1/imports lists first, as a drop.
func TestRunImport(t *testing.T) {
	st := apitest.StartStack(t, stack.Run, nil)
	api, s3, e, stderr := st.API, st.S3, st.Env, st.Stderr
	ctx := context.Background()
	command := func(args ...string) map[string]any {
		t.Helper()
		var out apitest.SyncBuffer
		if code := dispatch(ctx, args, &env{Stdout: &out, Stderr: stderr, Getenv: e.Getenv, Dir: e.Dir}); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
			t.Fatalf("%v printed %q", args, out.String())
		}
		return m
	}
	acct := command("account", "create", "--name", "Acme", "--admin", "admin@acme.test")["accountId"].(string)
	command("licenses", "add", "--account", acct, "--tier", "eco", "--quantity", "1", "--order", "o-1")
	tok := command("token", "admin@acme.test")["token"].(string)

	resp, body := apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api+"/v1/imports/template", nil, tok))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("template: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	req := apitest.HTTPRequest(t, http.MethodPost, api+"/v1/imports", strings.NewReader(`{"dryRun":false}`), tok)
	req.Header.Set("Content-Type", "application/json")
	resp, body = apitest.HTTPDo(t, req)
	var up struct {
		ImportID  string `json:"importId"`
		UploadURL string `json:"uploadUrl"`
	}
	if err := json.Unmarshal([]byte(body), &up); err != nil || resp.StatusCode != http.StatusCreated || !strings.HasPrefix(up.UploadURL, s3+"/license-admin-files/imports/"+acct+"/") {
		t.Fatalf("POST /v1/imports: %d %s", resp.StatusCode, body)
	}

	csvFile := strings.TrimSpace(string(mustTemplate(t, api, tok))) + "\n" +
		"ada@acme.test,Ada,Lovelace,en,eco\nbob@acme.test,Bob,Ross,fr,eco\nnot-an-email,X,Y,en,\n"
	put := apitest.HTTPRequest(t, http.MethodPut, up.UploadURL, strings.NewReader(csvFile), "")
	put.Header.Set("Content-Type", "text/csv")
	if resp, body := apitest.HTTPDo(t, put); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT upload URL: %d %s", resp.StatusCode, body)
	}

	var status struct {
		Status    string  `json:"status"`
		Rows      int     `json:"rows"`
		Created   int     `json:"created"`
		Failed    int     `json:"failed"`
		ReportURL *string `json:"reportUrl"`
	}
	st.Poll(t, "/v1/imports/"+up.ImportID, tok, time.Minute, &status, func() bool { return status.Status == "done" })
	if status.Rows != 3 || status.Created != 2 || status.Failed != 1 || status.ReportURL == nil {
		t.Fatalf("import %+v", status)
	}
	rresp, err := http.Get(*status.ReportURL)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(rresp.Body).ReadAll()
	rresp.Body.Close()
	if err != nil || len(recs) != 3 || !reflect.DeepEqual(recs[0], []string{"line", "email", "code", "message"}) ||
		recs[1][0] != "3" || recs[1][2] != "no_license_available" || recs[2][0] != "4" || recs[2][2] != "invalid_email" {
		t.Fatalf("report %q (%v)", recs, err)
	}
	if !strings.Contains(stderr.String(), "ImportUsersFunction") {
		t.Errorf("no log line of the import function's invocation:\n%s", stderr.String())
	}

	// A CSV dropped at drop/{accountId}/{name}.csv, no API call first, as
	// docs/imports.md's drop walk-through does it: the local S3 fires the
	// import function as the template's drop/ notification says.
	drop := apitest.HTTPRequest(t, http.MethodPut, s3+"/license-admin-files/drop/"+acct+"/hr-export.csv",
		strings.NewReader(strings.TrimSpace(string(mustTemplate(t, api, tok)))+"\ncy@acme.test,Cy,Young,en,\n"), "")
	if resp, body := apitest.HTTPDo(t, drop); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT drop/: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Items []struct {
			Source   string  `json:"source"`
			FileName *string `json:"fileName"`
			Status   string  `json:"status"`
			Created  int     `json:"created"`
		} `json:"items"`
	}
	st.Poll(t, "/v1/imports", tok, time.Minute, &list, func() bool {
		return len(list.Items) > 0 && list.Items[0].Source == "drop" && list.Items[0].Status == "done"
	})
	if len(list.Items) != 2 || list.Items[0].FileName == nil || *list.Items[0].FileName != "hr-export.csv" || list.Items[0].Created != 1 || list.Items[1].Source != "api" {
		t.Fatalf("imports %+v, want the drop (1 user) then the upload", list.Items)
	}
	if err := st.Stop(t); err != nil {
		t.Errorf("run ended with %v: %s", err, stderr.String())
	}
	if _, err := http.Get(s3 + "/"); err == nil {
		t.Error("the local S3 still answers after run stopped")
	}
}

func mustTemplate(t *testing.T, api, tok string) []byte {
	t.Helper()
	resp, body := apitest.HTTPDo(t, apitest.HTTPRequest(t, http.MethodGet, api+"/v1/imports/template", nil, tok))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("template: %d", resp.StatusCode)
	}
	return []byte(body)
}
