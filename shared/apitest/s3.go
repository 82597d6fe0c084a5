package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"licenseadmin/infra/s3local"
	"licenseadmin/shared/importer"
)

// ImportBucket is the bucket of a test's S3.
const ImportBucket = "license-admin-test"

// S3 is a test's S3: an s3local store on loopback holding ImportBucket.
// The events of files uploaded under imports/ or dropped under drop/ (as
// template.yaml's notifications filter them) and the continuations the
// import function asks for are queued, not run: a test delivers them when
// and as often as it wants (Deliver, RunImports), as Lambda would.
type S3 struct {
	*s3local.Server
	Bucket string

	mu      sync.Mutex
	uploads [][]byte
	next    []importer.Event
	iam     *iamCheck
}

// useS3 starts the test's S3 and gives the import service its bucket.
func (e *Env) useS3(tb testing.TB) {
	tb.Helper()
	srv, err := s3local.Start("127.0.0.1:0", ImportBucket)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	e.S3 = &S3{Server: srv, Bucket: ImportBucket, iam: e.iam}
	e.iam.bucket = ImportBucket
	srv.Notify(s3local.Notification{Bucket: ImportBucket, Prefix: importer.ImportPrefix, Suffix: ".csv", Deliver: e.S3.uploaded})
	srv.Notify(s3local.Notification{Bucket: ImportBucket, Prefix: importer.DropPrefix, Deliver: e.S3.uploaded})
	e.App.Config.S3.Bucket, e.App.Config.S3.Endpoint = ImportBucket, srv.URL
	e.App.UseImportFiles(s3.New(srv.Client().Options(), e.iam.s3), importer.InvokeFunc(e.S3.continued))
}

func (s *S3) uploaded(payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploads = append(s.uploads, payload)
}

func (s *S3) continued(ctx context.Context, ev importer.Event) error {
	s.iam.invoked(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = append(s.next, ev)
	return nil
}

// Drop puts body at key in the bucket as an integration with write access
// does (no API call first), and returns the object's ETag.
func (s *S3) Drop(tb testing.TB, key, body string) string {
	tb.Helper()
	out, err := s.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &s.Bucket, Key: &key, Body: strings.NewReader(body)})
	if err != nil {
		tb.Fatalf("drop %s: %v", key, err)
	}
	return strings.Trim(*out.ETag, `"`)
}

// Uploads waits until n upload events have arrived (S3 sends them
// asynchronously), and returns and forgets them.
func (s *S3) Uploads(tb testing.TB, n int) [][]byte {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.mu.Lock()
		if len(s.uploads) >= n {
			out := s.uploads
			s.uploads = nil
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			tb.Fatalf("%d upload events after 10 s, want %d", len(s.uploads), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Continuations returns and forgets the continuations the import function
// asked for.
func (s *S3) Continuations() []importer.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.next
	s.next = nil
	return out
}

// Deliver invokes the import function with an event's JSON as Lambda does
// (a fresh Lambda context with a request id and a 15-minute deadline) and
// returns its error.
func (e *Env) Deliver(payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("import-%d", reqSeq.Add(1))})
	ctx = AsFunction(ctx, "ImportUsersFunction")
	_, err := lambda.NewHandler(importer.Handler(e.App.Imports)).Invoke(ctx, payload)
	return err
}

// RunImports delivers payloads, then every continuation they ask for until
// none is left, failing the test on an invocation error. It returns how
// many invocations ran.
func (e *Env) RunImports(tb testing.TB, payloads ...[]byte) int {
	tb.Helper()
	n := 0
	for len(payloads) > 0 {
		for _, p := range payloads {
			if err := e.Deliver(p); err != nil {
				tb.Fatalf("import invocation %d: %v", n+1, err)
			}
			n++
		}
		payloads = nil
		for _, c := range e.S3.Continuations() {
			b, _ := json.Marshal(c)
			payloads = append(payloads, b)
		}
		if n > 100_000 {
			tb.Fatal("more than 100000 import invocations: the import does not advance")
		}
	}
	return n
}
