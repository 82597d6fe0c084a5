package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/seslocal"
)

// TestS3HandlersMatchTemplate ensures every function with S3 events is
// served by the local S3 with the very handler expression its main uses,
// and nothing else is.
func TestS3HandlersMatchTemplate(t *testing.T) {
	root, tpl, dirs := project(t)
	sources, err := tpl.S3Sources()
	if err != nil {
		t.Fatal(err)
	}
	// A function may have several S3 events (the import: imports/ and
	// drop/); it is served once.
	var ids []string
	seen := map[string]bool{}
	for _, s := range sources {
		if !seen[s.Function] {
			seen[s.Function] = true
			ids = append(ids, s.Function)
		}
	}
	checkRegistry(t, root, dirs, "infra/local/s3handlers.go", "S3", ids)
}

// TestRunImport ensures the bulk import walk-through of docs/imports.md works on the
// stack `run` starts: the template downloads; POST /v1/imports gives a
// presigned URL of the local S3; a plain HTTP PUT of a CSV to it (curl -T)
// starts the import function as S3's notification would; GET shows it done
// with its counters; the report downloads from its presigned URL; a CSV
// PUT at drop/{accountId}/{name}.csv starts an import too, which GET
// /v1/imports lists first, as a drop.
func TestRunImport(t *testing.T) {
	client, _ := dynamolocal.NewTable(t)
	table := "run-import-" + randomHex(4)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	endpoint := aws.ToString(client.Options().BaseEndpoint)
	t.Setenv("DYNAMODB_ENDPOINT", endpoint)
	root, _, _, _ := newRoot(t)
	t.Setenv("SES_ENDPOINT", seslocal.Shared(t).Endpoint)
	vars := map[string]string{"API_ADDR": "127.0.0.1:0", "TABLE_NAME": table, "S3_PORT": "0", "SQS_PORT": "0", "DYNAMODB_ENDPOINT": endpoint}
	var stdout, stderr syncBuffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }, dir: root}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- dispatch(ctx, []string{"run"}, e) }()

	var api, s3 string
	for deadline := time.Now().Add(time.Minute); api == "" || s3 == ""; {
		out := stdout.String()
		if m := regexp.MustCompile(`API:\s+(http://\S+)`).FindStringSubmatch(out); m != nil {
			api = m[1]
		}
		if m := regexp.MustCompile(`S3:\s+(http://\S+) \(bucket license-admin-files`).FindStringSubmatch(out); m != nil {
			s3 = m[1]
		}
		select {
		case code := <-exited:
			t.Fatalf("run exited with %d: %s%s", code, out, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not print its API and S3 addresses: %s", out)
		}
	}
	command := func(args ...string) map[string]any {
		t.Helper()
		var out syncBuffer
		if code := dispatch(ctx, args, &env{stdout: &out, stderr: &stderr, getenv: e.getenv, dir: root}); code != 0 {
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

	resp, body := do(t, newRequest(t, http.MethodGet, api+"/v1/imports/template", nil, tok))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("template: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	req := newRequest(t, http.MethodPost, api+"/v1/imports", strings.NewReader(`{"dryRun":false}`), tok)
	req.Header.Set("Content-Type", "application/json")
	resp, body = do(t, req)
	var up struct {
		ImportID  string `json:"importId"`
		UploadURL string `json:"uploadUrl"`
	}
	if err := json.Unmarshal([]byte(body), &up); err != nil || resp.StatusCode != http.StatusCreated || !strings.HasPrefix(up.UploadURL, s3+"/license-admin-files/imports/"+acct+"/") {
		t.Fatalf("POST /v1/imports: %d %s", resp.StatusCode, body)
	}

	csvFile := strings.TrimSpace(string(mustTemplate(t, api, tok))) + "\n" +
		"ada@acme.test,Ada,Lovelace,en,eco\nbob@acme.test,Bob,Ross,fr,eco\nnot-an-email,X,Y,en,\n"
	put := newRequest(t, http.MethodPut, up.UploadURL, strings.NewReader(csvFile), "")
	put.Header.Set("Content-Type", "text/csv")
	if resp, body := do(t, put); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT upload URL: %d %s", resp.StatusCode, body)
	}

	var status struct {
		Status    string  `json:"status"`
		Rows      int     `json:"rows"`
		Created   int     `json:"created"`
		Failed    int     `json:"failed"`
		ReportURL *string `json:"reportUrl"`
	}
	for deadline := time.Now().Add(time.Minute); status.Status != "done"; {
		resp, body := do(t, newRequest(t, http.MethodGet, api+"/v1/imports/"+up.ImportID, nil, tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET import: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(body), &status); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("import still %s after a minute: %s\n%s", status.Status, body, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	drop := newRequest(t, http.MethodPut, s3+"/license-admin-files/drop/"+acct+"/hr-export.csv",
		strings.NewReader(strings.TrimSpace(string(mustTemplate(t, api, tok)))+"\ncy@acme.test,Cy,Young,en,\n"), "")
	if resp, body := do(t, drop); resp.StatusCode != http.StatusOK {
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
	for deadline := time.Now().Add(time.Minute); len(list.Items) == 0 || list.Items[0].Source != "drop" || list.Items[0].Status != "done"; {
		resp, body := do(t, newRequest(t, http.MethodGet, api+"/v1/imports", nil, tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/imports: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dropped import done after a minute: %s\n%s", body, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(list.Items) != 2 || list.Items[0].FileName == nil || *list.Items[0].FileName != "hr-export.csv" || list.Items[0].Created != 1 || list.Items[1].Source != "api" {
		t.Fatalf("imports %+v, want the drop (1 user) then the upload", list.Items)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("run exited with %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
	if _, err := http.Get(s3 + "/"); err == nil {
		t.Error("the local S3 still answers after run stopped")
	}
}

func mustTemplate(t *testing.T, api, tok string) []byte {
	t.Helper()
	resp, body := do(t, newRequest(t, http.MethodGet, api+"/v1/imports/template", nil, tok))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("template: %d", resp.StatusCode)
	}
	return []byte(body)
}
