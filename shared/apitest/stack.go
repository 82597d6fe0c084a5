package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/seslocal"
)

// Stack is the local stack (`go run ./infra/local run`) running in the
// test's process, on free ports, over a fresh table of the tests'
// DynamoDB Local and the shared SES emulator: for the tests of the stack
// and of the operator commands run against it.
type Stack struct {
	// API, SQS and S3 are the addresses the banner printed.
	API, SQS, S3 string
	// Env is the environment run got; a command run against the stack
	// takes its Getenv and Dir.
	Env *cli.Env
	// Stdout and Stderr are what run wrote so far.
	Stdout, Stderr *SyncBuffer
	// Table is the stack's table.
	Table string

	cancel context.CancelFunc
	exited chan error
}

// RunFunc is the `run` command.
type RunFunc func(ctx context.Context, e *cli.Env, args []string) error

// StartStack runs run in a fresh repository root with vars (and the
// ports, the table and the endpoints of the tests' peers) until the test
// ends, and returns once the banner printed the API, SQS and S3
// addresses. The test must not be parallel: it sets DYNAMODB_ENDPOINT and
// SES_ENDPOINT.
func StartStack(t *testing.T, run RunFunc, vars map[string]string) *Stack {
	t.Helper()
	client, table := dynamolocal.NewTable(t)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	// run creates its table from the template: a name of its own.
	table += "-run"
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	endpoint := aws.ToString(client.Options().BaseEndpoint)
	t.Setenv("DYNAMODB_ENDPOINT", endpoint)
	t.Setenv("SES_ENDPOINT", seslocal.Shared(t).Endpoint)
	all := map[string]string{"API_ADDR": "127.0.0.1:0", "TABLE_NAME": table, "S3_PORT": "0", "SQS_PORT": "0", "DYNAMODB_ENDPOINT": endpoint}
	for k, v := range vars {
		all[k] = v
	}
	s := &Stack{Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, Table: table, exited: make(chan error, 1)}
	s.Env = &cli.Env{Stdout: s.Stdout, Stderr: s.Stderr, Getenv: func(k string) string { return all[k] }, Dir: NewRoot(t)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.exited <- run(ctx, s.Env, nil) }()
	t.Cleanup(func() { _ = s.Stop(t) })

	banner := regexp.MustCompile(`(?m)^API:\s+(http://\S+)$[\s\S]*^SQS:\s+(http://\S+) [\s\S]*^S3:\s+(http://\S+) `)
	for deadline := time.Now().Add(time.Minute); ; {
		if m := banner.FindStringSubmatch(s.Stdout.String()); m != nil {
			s.API, s.SQS, s.S3 = m[1], m[2], m[3]
			return s
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("run ended (%v): %s%s", err, s.Stdout.String(), s.Stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not print its addresses: %s%s", s.Stdout.String(), s.Stderr.String())
		}
	}
}

// Stop stops run as Ctrl-C does and returns what it returned; stopping
// again returns the same.
func (s *Stack) Stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.exited:
		s.exited <- err
		return err
	case <-time.After(15 * time.Second):
		t.Error("run did not stop")
		return nil
	}
}

// NewRoot returns a fresh repository root (a go.mod and an infra/local
// directory below it, where the commands are started from), where a
// command keeps its .local/ files.
func NewRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "infra", "local")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	return sub
}

// SyncBuffer is a bytes.Buffer safe for a command's goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Poll GETs path from the stack's API with token every 100 ms, decoding
// each answer, which must be a 200, into v, until done says what the test
// waits for is there. After wait it fails the test with the last answer
// and what run wrote.
func (s *Stack) Poll(tb testing.TB, path, token string, wait time.Duration, v any, done func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
		resp, body := HTTPDo(tb, HTTPRequest(tb, http.MethodGet, s.API+path, nil, token))
		if resp.StatusCode != http.StatusOK {
			tb.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			tb.Fatalf("GET %s: %v: %s", path, err, body)
		}
		if done() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s: still not there after %s: %s\n%s%s", path, wait, body, s.Stdout.String(), s.Stderr.String())
		}
	}
}

// HTTPRequest returns a request, with a bearer token unless token is "".
func HTTPRequest(tb testing.TB, method, url string, body io.Reader, token string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// HTTPDo sends req and returns the response and its body.
func HTTPDo(tb testing.TB, req *http.Request) (*http.Response, string) {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(b)
}
