package s3local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"licenseadmin/infra/s3local"
)

// start runs a store with bucket "b" whose notification for imports/*.csv
// sends the events to the returned channel.
func start(t *testing.T) (*s3local.Server, chan events.S3Event) {
	t.Helper()
	srv, err := s3local.Start("127.0.0.1:0", "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	got := make(chan events.S3Event, 10)
	srv.Notify(s3local.Notification{Bucket: "b", Prefix: "imports/", Suffix: ".csv", Events: []string{"s3:ObjectCreated:*"}, Deliver: func(p []byte) {
		var ev events.S3Event
		if err := json.Unmarshal(p, &ev); err != nil {
			t.Errorf("event %s: %v", p, err)
		}
		got <- ev
	}})
	return srv, got
}

func next(t *testing.T, ch chan events.S3Event) events.S3EventRecord {
	t.Helper()
	select {
	case ev := <-ch:
		if len(ev.Records) != 1 {
			t.Fatalf("event with %d records", len(ev.Records))
		}
		return ev.Records[0]
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return events.S3EventRecord{}
}

func none(t *testing.T, ch chan events.S3Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestNotifications ensures objects created under the filter (a PUT with
// the SDK, a PUT to a presigned URL, a completed multipart upload) send the
// event AWS sends, decodable by aws-lambda-go with the key URL-decoded, the
// size and the ETag; other keys, failed PUTs and part uploads send none.
func TestNotifications(t *testing.T) {
	srv, got := start(t)
	c := srv.Client()
	ctx := context.Background()
	key := "imports/a b/c+d.csv"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	r := next(t, got)
	if r.EventName != "ObjectCreated:Put" || r.EventSource != "aws:s3" || r.S3.Bucket.Name != "b" || r.S3.Bucket.Arn != "arn:aws:s3:::b" ||
		r.S3.Object.URLDecodedKey != key || r.S3.Object.Key != "imports/a+b/c%2Bd.csv" || r.S3.Object.Size != 5 ||
		r.S3.Object.ETag != "5d41402abc4b2a76b9719d911017c592" || r.S3.Object.VersionID != "" || r.EventTime.IsZero() {
		t.Fatalf("record %+v", r)
	}

	presign := s3.NewPresignClient(c)
	req, err := presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("imports/x.csv"), ContentType: aws.String("text/csv")})
	if err != nil {
		t.Fatal(err)
	}
	hreq, _ := http.NewRequest(http.MethodPut, req.URL, strings.NewReader("a,b\n"))
	hreq.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("presigned PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	if r := next(t, got); r.S3.Object.URLDecodedKey != "imports/x.csv" || r.S3.Object.Size != 4 {
		t.Fatalf("presigned PUT record %+v", r.S3.Object)
	}

	for _, k := range []string{"other/x.csv", "imports/x.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("missing"), Key: aws.String("imports/x.csv"), Body: strings.NewReader("x")}); err == nil {
		t.Fatal("PUT to a missing bucket succeeded")
	}
	none(t, got)

	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("imports/big.csv")})
	if err != nil {
		t.Fatal(err)
	}
	part := bytes.Repeat([]byte("x"), 5<<20)
	var parts []types.CompletedPart
	for i := int32(1); i <= 2; i++ {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("b"), Key: aws.String("imports/big.csv"), UploadId: up.UploadId,
			PartNumber: aws.Int32(i), Body: bytes.NewReader(part)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(i)})
	}
	none(t, got)
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("imports/big.csv"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, got); r.EventName != "ObjectCreated:CompleteMultipartUpload" || r.S3.Object.Size != 10<<20 {
		t.Fatalf("multipart record %s %+v", r.EventName, r.S3.Object)
	}
}

// TestClose ensures Close stops the server.
func TestClose(t *testing.T) {
	srv, err := s3local.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("still serving after Close")
	}
}

// TestStartDir ensures a store started in a directory keeps its objects
// there for the next store started in it, and that one in memory does not.
func TestStartDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(start func() (*s3local.Server, error)) *s3local.Server {
		t.Helper()
		srv, err := start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	}
	first := open(func() (*s3local.Server, error) { return s3local.StartDir("127.0.0.1:0", dir, "b") })
	if _, err := first.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("imports/a.csv"), Body: strings.NewReader("x,y\n")}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(func() (*s3local.Server, error) { return s3local.StartDir("127.0.0.1:0", dir, "b") })
	out, err := again.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("imports/a.csv")})
	if err != nil {
		t.Fatalf("the object did not survive the restart: %v", err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(out.Body)
	out.Body.Close()
	if body.String() != "x,y\n" {
		t.Fatalf("object %q after the restart", body.String())
	}
	mem := open(func() (*s3local.Server, error) { return s3local.Start("127.0.0.1:0", "b") })
	if _, err := mem.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("imports/a.csv")}); err == nil {
		t.Fatal("a store in memory has the object")
	}
}
