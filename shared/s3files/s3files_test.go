package s3files_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"licenseadmin/infra/s3local"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/s3files"
)

func newFiles(t *testing.T) (*s3files.Files, *s3local.Server) {
	t.Helper()
	srv, err := s3local.Start("127.0.0.1:0", "files")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return s3files.New(srv.Client(), "files"), srv
}

// object returns the identity of the object at key, as an S3 event gives it.
func object(t *testing.T, f *s3files.Files, key string) licadmin.ImportObject {
	t.Helper()
	out, err := f.Client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("files"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	return licadmin.ImportObject{Bucket: "files", Key: key, ETag: strings.Trim(aws.ToString(out.ETag), `"`), Size: aws.ToInt64(out.ContentLength)}
}

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustOpen(t *testing.T, f *s3files.Files, obj licadmin.ImportObject, offset int64) io.ReadCloser {
	t.Helper()
	rc, err := f.Open(context.Background(), obj, offset)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestWriteAndOpen ensures a write shorter than a part and one of several
// parts (a multipart upload) store exactly what was written, and that Open
// reads from any offset, the end included.
func TestWriteAndOpen(t *testing.T) {
	f, _ := newFiles(t)
	ctx := context.Background()
	for _, size := range []int{10, s3files.PartSize*2 + 12345} {
		want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		err := f.Write(ctx, "reports/r.csv", "text/csv", func(w io.Writer) error {
			for b := want; len(b) > 0; {
				n := min(len(b), 1000)
				if _, err := w.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		obj := object(t, f, "reports/r.csv")
		if got := readAll(t, mustOpen(t, f, obj, 0)); got != string(want) {
			t.Fatalf("size %d: read %d bytes back", size, len(got))
		}
		if got := readAll(t, mustOpen(t, f, obj, int64(size-5))); got != string(want[size-5:]) {
			t.Fatalf("size %d: read from offset %d: %q", size, size-5, got)
		}
		if got := readAll(t, mustOpen(t, f, obj, int64(size))); got != "" {
			t.Fatalf("read at the end: %q", got)
		}
	}
	// A failed write leaves nothing behind and says why.
	boom := errors.New("boom")
	if err := f.Write(ctx, "reports/failed.csv", "text/csv", func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
}

// TestOpenChanged ensures Open refuses an object that is no longer the one
// the import read: replaced by another upload (changed), or deleted
// (missing).
func TestOpenChanged(t *testing.T) {
	f, _ := newFiles(t)
	ctx := context.Background()
	put := func(body string) {
		if _, err := f.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("files"), Key: aws.String("imports/a.csv"), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put("first upload")
	obj := object(t, f, "imports/a.csv")
	put("second upload")
	if _, err := f.Open(ctx, obj, 1); !errors.Is(err, licadmin.ErrImportFileChanged) {
		t.Fatalf("replaced: err %v", err)
	}
	if _, err := f.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("files"), Key: aws.String("imports/a.csv")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Open(ctx, obj, 1); !errors.Is(err, licadmin.ErrImportFileMissing) {
		t.Fatalf("deleted: err %v, want ErrImportFileMissing", err)
	}
}

// TestPresign ensures presigned URLs work with plain HTTP: a PUT with the
// signed Content-Type stores the file; a GET downloads it as an attachment.
func TestPresign(t *testing.T) {
	f, _ := newFiles(t)
	ctx := context.Background()
	up, err := f.PresignUpload(ctx, "imports/p.csv", "text/csv", 15*time.Minute)
	if err != nil || !strings.Contains(up, "X-Amz-Expires=900") || !strings.Contains(up, "X-Amz-SignedHeaders=content-type%3Bhost") {
		t.Fatalf("upload URL %s (%v): want 15 minutes and a signed content-type", up, err)
	}
	req, _ := http.NewRequest(http.MethodPut, up, strings.NewReader("email\n"))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	down, err := f.PresignDownload(ctx, "imports/p.csv", "report.csv", "text/csv; charset=utf-8", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(down)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || body != "email\n" || resp.Header.Get("Content-Disposition") != `attachment; filename="report.csv"` {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}
