package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/seslocal"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun ensures `run` serves the real template with the real handlers:
// it creates its table, prints where it listens and how to get a token,
// refuses a request without a token at the gateway, passes one with a
// token from `token` to the function, and stops on cancel.
func TestRun(t *testing.T) {
	client, _ := dynamolocal.NewTable(t)
	table := "run-test-" + randomHex(4)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	t.Setenv("DYNAMODB_ENDPOINT", aws.ToString(client.Options().BaseEndpoint))
	root, _, _, _ := newRoot(t)
	t.Setenv("SES_ENDPOINT", seslocal.Shared(t).Endpoint)
	vars := map[string]string{"API_ADDR": "127.0.0.1:0", "TABLE_NAME": table, "S3_PORT": "0", "SQS_PORT": "0"}
	var stdout, stderr syncBuffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }, dir: root}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- dispatch(ctx, []string{"run"}, e) }()

	apiLine := regexp.MustCompile(`API:\s+(http://\S+)`)
	var url string
	for deadline := time.Now().Add(time.Minute); url == ""; {
		if m := apiLine.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("run exited with %d: %s%s", code, stdout.String(), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not print its API address: %s", stdout.String())
		}
	}
	for _, want := range []string{"DynamoDB:  " + os.Getenv("DYNAMODB_ENDPOINT"), "Table:     " + table + " (created", "go run ./infra/local token you@example.com", "Email:     " + os.Getenv("SES_ENDPOINT")} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}

	resp, body := do(t, newRequest(t, http.MethodGet, url+"/v1/licenses", nil, ""))
	if resp.StatusCode != http.StatusUnauthorized || body != `{"message":"Unauthorized"}` {
		t.Errorf("no token: got %d %s, want the gateway's 401", resp.StatusCode, body)
	}
	var tokOut syncBuffer
	if code := dispatch(ctx, []string{"token", "nobody@example.com"}, &env{stdout: &tokOut, stderr: &stderr, getenv: e.getenv, dir: root}); code != 0 {
		t.Fatalf("token: exit %d: %s", code, stderr.String())
	}
	tok := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(tokOut.String())[1]
	resp, body = do(t, newRequest(t, http.MethodGet, url+"/v1/licenses", nil, tok))
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusUnauthorized || !strings.Contains(ct, "json") || strings.Contains(body, `"message":"`) {
		t.Errorf("with a token: got %d %s %s, want the function's own answer", resp.StatusCode, ct, body)
	}
	if !strings.Contains(stdout.String(), "GET /v1/licenses") {
		t.Errorf("no request log line:\n%s", stdout.String())
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
	if _, err := http.Get(url + "/v1/licenses"); err == nil {
		t.Error("the API still answers after run stopped")
	}
}

// TestDataDirs ensures PERSIST chooses where `run` keeps its data: memory
// by default, .local/ under the repository root with PERSIST=1.
func TestDataDirs(t *testing.T) {
	for _, tc := range []struct {
		persist    string
		ddb, s3    string
		wantErr    bool
		wantInText string
	}{
		{"", "", "", false, "in memory"},
		{"0", "", "", false, "in memory"},
		{"1", "/repo/.local/dynamodb", "/repo/.local/s3", false, "kept across restarts"},
		{"yes", "", "", true, ""},
	} {
		e := &env{getenv: func(k string) string { return map[string]string{"PERSIST": tc.persist}[k] }}
		d, err := dataDirs(e, "/repo")
		if (err != nil) != tc.wantErr || d.dynamoDB != tc.ddb || d.s3 != tc.s3 || !strings.Contains(d.String(), tc.wantInText) {
			t.Errorf("PERSIST=%q: %+v %q %v", tc.persist, d, d.String(), err)
		}
	}
}
