// Package s3local runs an S3-compatible store on loopback for the local
// stack and the tests: gofakes3 in memory, served over real HTTP with
// path-style addressing so that the AWS SDK and presigned URLs (PUT with
// curl or a browser, GET of a report) work against it unchanged. It
// ignores signatures and expiry, as a local stand-in may.
//
// gofakes3 has no event notifications; s3local adds them: after each
// successful object creation (PUT, copy, completed multipart upload) it
// hands the event that S3 would send to a Lambda function — the same JSON —
// to every Notification whose bucket, prefix and suffix match.
package s3local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/spf13/afero"
)

// Region is the region of the local store's events and clients.
const Region = "us-east-1"

// Notification sends the events of objects created in Bucket whose key
// starts with Prefix and ends with Suffix to Deliver, as a bucket's
// notification configuration sends them to a function.
type Notification struct {
	Bucket string
	Prefix string
	Suffix string
	// Events are the event types, as in a notification configuration
	// ("s3:ObjectCreated:*" or "s3:ObjectCreated:Put", ...); none means
	// every ObjectCreated event.
	Events []string
	// Deliver receives the event JSON. It is called in a goroutine of its
	// own, after the client got its answer, as S3 delivers asynchronously.
	Deliver func(payload []byte)
}

// Server is a running local S3.
type Server struct {
	// URL is the endpoint, such as http://127.0.0.1:9000.
	URL string
	// Log, when set, receives one line per request.
	Log func(format string, args ...any)

	backend gofakes3.Backend
	handler http.Handler
	srv     *http.Server
	ln      net.Listener
	served  chan error

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	notes []Notification
}

// Start serves a new, empty store in memory on addr (host:port; port 0
// picks a free one) with the given buckets.
func Start(addr string, buckets ...string) (*Server, error) {
	return start(addr, s3mem.New(), buckets)
}

// StartDir is Start with the objects kept as files under dir (created if
// missing), where a later StartDir finds them again: buckets/<bucket>/<key>
// and their metadata under metadata/. Such a store has no object versions.
func StartDir(addr, dir string, buckets ...string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("s3local: %w", err)
	}
	backend, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), dir))
	if err != nil {
		return nil, fmt.Errorf("s3local: open %s: %w", dir, err)
	}
	return start(addr, backend, buckets)
}

func start(addr string, backend gofakes3.Backend, buckets []string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3local: listen on %s: %w", addr, err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), backend: backend, ln: ln, served: make(chan error, 1)}
	s.handler = gofakes3.New(s.backend, gofakes3.WithAutoBucket(false)).Server()
	for _, b := range buckets {
		if err := s.CreateBucket(b); err != nil {
			ln.Close()
			return nil, err
		}
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// CreateBucket creates a bucket; an existing one is kept.
func (s *Server) CreateBucket(name string) error {
	if ok, _ := s.backend.BucketExists(name); ok {
		return nil
	}
	if err := s.backend.CreateBucket(name); err != nil {
		return fmt.Errorf("s3local: create bucket %s: %w", name, err)
	}
	return nil
}

// Notify adds a notification.
func (s *Server) Notify(n Notification) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, n)
}

// Client returns an S3 client of this store: path-style, static dummy
// credentials, checksums only when required.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(s.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("local", "local", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Close stops serving, letting requests in flight finish for up to 5 s;
// closing again does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.closeErr = s.srv.Shutdown(ctx)
		if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && s.closeErr == nil {
			s.closeErr = serr
		}
	})
	return s.closeErr
}

// ServeHTTP serves S3 requests and sends the notifications of objects they
// created.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.handler.ServeHTTP(rec, r)
	if s.Log != nil {
		s.Log("%s %s %d", r.Method, r.URL.Path, rec.status)
	}
	if rec.status != http.StatusOK {
		return
	}
	q := r.URL.Query()
	var name string
	switch {
	case r.Method == http.MethodPut && onlySigning(q):
		name = "ObjectCreated:Put"
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			name = "ObjectCreated:Copy"
		}
	case r.Method == http.MethodPost && q.Has("uploadId"):
		name = "ObjectCreated:CompleteMultipartUpload"
	default:
		return
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || key == "" {
		return
	}
	s.created(r, name, bucket, key, rec.Header().Get("X-Amz-Version-Id"))
}

// onlySigning reports whether a PUT's query holds nothing but a presigned
// URL's X-Amz-* parameters and the SDK's x-id: an object upload, not a part
// or a sub-resource (?uploadId, ?partNumber, ?tagging, ?acl, ...).
func onlySigning(q url.Values) bool {
	for k := range q {
		if k != "x-id" && !strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			return false
		}
	}
	return true
}

// created sends the event of an object created by r to the matching
// notifications.
func (s *Server) created(r *http.Request, name, bucket, key, version string) {
	s.mu.Lock()
	var targets []Notification
	for _, n := range s.notes {
		if n.Bucket == bucket && strings.HasPrefix(key, n.Prefix) && strings.HasSuffix(key, n.Suffix) && wants(n.Events, name) {
			targets = append(targets, n)
		}
	}
	s.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	obj, err := s.backend.HeadObject(bucket, key)
	if err != nil {
		return // replaced or deleted meanwhile: S3 would send that object's own event
	}
	obj.Contents.Close()
	payload := Event(name, bucket, key, obj.Size, hex.EncodeToString(obj.Hash), version, clientIP(r), time.Now())
	for _, n := range targets {
		go n.Deliver(payload)
	}
}

func wants(events []string, name string) bool {
	if len(events) == 0 {
		return strings.HasPrefix(name, "ObjectCreated:")
	}
	for _, e := range events {
		e = strings.TrimPrefix(e, "s3:")
		if e == name || (strings.HasSuffix(e, ":*") && strings.HasPrefix(name, strings.TrimSuffix(e, "*"))) {
			return true
		}
	}
	return false
}

// Event returns the JSON of the S3 event notification that AWS sends to a
// Lambda function for one created object (event version 2.1): the key
// URL-encoded as S3 encodes it (spaces as +), no versionId when the bucket
// is not versioned.
func Event(name, bucket, key string, size int64, eTag, versionID, sourceIP string, at time.Time) []byte {
	type identity struct {
		PrincipalID string `json:"principalId"`
	}
	object := map[string]any{
		"key":       strings.ReplaceAll(url.QueryEscape(key), "%2F", "/"),
		"size":      size,
		"eTag":      eTag,
		"sequencer": fmt.Sprintf("%016X", at.UnixNano()),
	}
	if versionID != "" {
		object["versionId"] = versionID
	}
	record := map[string]any{
		"eventVersion":      "2.1",
		"eventSource":       "aws:s3",
		"awsRegion":         Region,
		"eventTime":         at.UTC().Format("2006-01-02T15:04:05.000Z"),
		"eventName":         name,
		"userIdentity":      identity{"AWS:LOCAL"},
		"requestParameters": map[string]string{"sourceIPAddress": sourceIP},
		"responseElements":  map[string]string{"x-amz-request-id": randomHex(8), "x-amz-id-2": randomHex(32)},
		"s3": map[string]any{
			"s3SchemaVersion": "1.0",
			"configurationId": "local-notification",
			"bucket":          map[string]any{"name": bucket, "ownerIdentity": identity{"LOCAL"}, "arn": "arn:aws:s3:::" + bucket},
			"object":          object,
		},
	}
	b, _ := json.Marshal(map[string]any{"Records": []any{record}})
	return b
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}
