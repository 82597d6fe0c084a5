// Package importer runs bulk imports of users from CSV files uploaded to S3
// (docs/imports.md): POST /v1/imports hands out a presigned upload URL
// for imports/{accountId}/{importId}.csv, the bucket's ObjectCreated event
// starts the import function, which streams the file row by row, writes
// the users in chunked transactions with a checkpoint, continues in a
// fresh invocation before the Lambda time limit, and ends with a report of
// every failed row.
//
// Idempotency: an import is keyed on its account and id (from the object
// key, which must name an import the account created) and on the uploaded
// object (ETag and version). Only one invocation at a time holds an
// import's lease; each chunk commits its rows and the checkpoint in one
// transaction conditioned on the lease and the previous checkpoint. So the
// same S3 event delivered twice, a Lambda retry, a continuation delivered
// twice, or another upload of the same key never creates a user twice.
package importer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"licenseadmin/shared/csvimport"
	"licenseadmin/shared/licadmin"
)

// Limits and settings of imports.
const (
	// DefaultMaxFileBytes is the largest file imported (100 MiB, about 1.5
	// million rows): a presigned PUT cannot bound the size, so a larger
	// upload fails its import with file_too_large before a row is read.
	DefaultMaxFileBytes = 100 << 20
	// UploadTTL is how long an upload URL is valid.
	UploadTTL = 15 * time.Minute
	// ReportURLTTL is how long a report URL is valid; each GET signs a
	// new one.
	ReportURLTTL = 15 * time.Minute
	// ContentType is the type an upload must declare (it is signed).
	ContentType = "text/csv"
	// ReportContentType is the report's type.
	ReportContentType = "text/csv; charset=utf-8"
	// DefaultDeadlineMargin is how long before the invocation's deadline
	// the function stops taking new chunks and continues in a fresh one.
	DefaultDeadlineMargin = 60 * time.Second
	// DefaultLease is how long an invocation holds an import without
	// renewing it (each chunk renews it): the time after which a Lambda
	// retry may take over from an invocation that died.
	DefaultLease = 90 * time.Second
)

// Key prefixes in the bucket; the bucket's lifecycle expires them all.
// DropPrefix is where systems with IAM write access drop files, no API
// call first: drop/{accountId}/{name}.csv.
const (
	ImportPrefix = "imports/"
	ReportPrefix = "reports/"
	DropPrefix   = "drop/"
)

// Store is what imports need from storage.
type Store interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	Pool(ctx context.Context, accountID string) (*licadmin.Pool, error)
	CreateImport(ctx context.Context, c *licadmin.Caller, imp *licadmin.Import, response any, now time.Time) error
	CreateDropImport(ctx context.Context, imp *licadmin.Import, now time.Time) error
	ListImports(ctx context.Context, accountID string, limit int, after []byte) ([]*licadmin.Import, []byte, error)
	GetImport(ctx context.Context, accountID, importID string) (*licadmin.Import, error)
	ClaimImport(ctx context.Context, accountID, importID string, obj *licadmin.ImportObject, owner string, until, now time.Time) (*licadmin.Import, error)
	ReleaseImport(ctx context.Context, imp *licadmin.Import, now time.Time) error
	FinishImport(ctx context.Context, imp *licadmin.Import, status licadmin.ImportStatus, ierr *licadmin.ImportError, now time.Time) error
	LookupImportRows(ctx context.Context, imp *licadmin.Import, emails, domains []string) (*licadmin.ImportLookup, error)
	CommitImportChunk(ctx context.Context, ch *licadmin.ImportChunk) (*licadmin.ImportChunkResult, error)
	PutImportFailure(ctx context.Context, imp *licadmin.Import, f licadmin.ImportFailure) error
	ImportReport(ctx context.Context, importID string, fn func(licadmin.ImportFailure) error) error
}

// Files is the bucket of uploads and reports (package s3files).
type Files interface {
	PresignUpload(ctx context.Context, key, contentType string, ttl time.Duration) (string, error)
	PresignDownload(ctx context.Context, key, filename, contentType string, ttl time.Duration) (string, error)
	// Open reads obj from offset on; it fails with
	// licadmin.ErrImportFileChanged when the object is no longer obj, and
	// licadmin.ErrImportFileMissing when it is gone.
	Open(ctx context.Context, obj licadmin.ImportObject, offset int64) (io.ReadCloser, error)
	Write(ctx context.Context, key, contentType string, write func(io.Writer) error) error
}

// Invoker starts a fresh invocation of the import function with ev,
// without waiting for it: in AWS an asynchronous Invoke of the function
// itself, locally a goroutine.
type Invoker interface {
	Invoke(ctx context.Context, ev Event) error
}

// InvokeFunc adapts a function to Invoker.
type InvokeFunc func(ctx context.Context, ev Event) error

// Invoke calls f.
func (f InvokeFunc) Invoke(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Service runs imports.
type Service struct {
	Store   Store
	Files   Files
	Invoker Invoker
	// Bucket is the bucket uploads go to; events of other buckets are
	// refused.
	Bucket  string
	Webmail licadmin.Webmail
	Now     licadmin.Clock
	NewID   licadmin.IDSource
	Logger  *slog.Logger
	// Metrics is told what each invocation of the import function did:
	// rows read, rows failed, time taken; nil records nothing.
	Metrics ImportMetrics
	// DropMetrics counts the dropped files rejected; nil counts nothing.
	DropMetrics DropMetrics

	// MaxFileBytes bounds an upload (DefaultMaxFileBytes when zero).
	MaxFileBytes int64
	// DeadlineMargin is kept free before the invocation's deadline
	// (DefaultDeadlineMargin when zero).
	DeadlineMargin time.Duration
	// MaxRunTime, when not zero, also ends an invocation this long after
	// it started (each invocation does at least one step): tests force a
	// tiny time budget with it.
	MaxRunTime time.Duration
	// ChunkRows, when not zero, caps the rows of a chunk (otherwise as
	// many as fit in one transaction).
	ChunkRows int
	// Lease is how long a claim lasts without renewal (DefaultLease when
	// zero).
	Lease time.Duration
}

// ImportMetrics records the work of one invocation of the import function
// (CloudWatch EMF in Lambda: *metrics.Emitter). An import of a large file
// runs over several invocations; each reports its own rows, so that the
// sums are the import's and the rate is what one invocation sustains.
type ImportMetrics interface {
	Import(accountID string, dryRun bool, rows, failed int64, elapsed time.Duration)
}

// DropMetrics counts the files dropped under drop/ that import nothing
// (CloudWatch EMF in Lambda: *metrics.Emitter), by reason: an operator
// watches for an integration that writes to the wrong place.
type DropMetrics interface {
	DropRejected(reason string)
}

// Reasons a dropped file is rejected (DropMetrics).
const (
	DropMalformedKey   = "malformed_key"
	DropNotCSV         = "not_csv"
	DropUnknownAccount = "unknown_account"
)

// ImportKey is the object key an import's file is uploaded to.
func ImportKey(accountID, importID string) string {
	return ImportPrefix + accountID + "/" + importID + ".csv"
}

// ReportKey is the object key of an import's report.
func ReportKey(accountID, importID string) string {
	return ReportPrefix + accountID + "/" + importID + ".csv"
}

// ParseKey returns the account and import ids of an object key of the form
// imports/{accountId}/{importId}.csv, and false for any other key.
func ParseKey(key string) (accountID, importID string, ok bool) {
	rest, ok := strings.CutPrefix(key, ImportPrefix)
	if !ok {
		return "", "", false
	}
	accountID, file, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	importID, ok = strings.CutSuffix(file, ".csv")
	if !ok || !isID(accountID) || !isID(importID) {
		return "", "", false
	}
	return accountID, importID, true
}

// MaxDropNameLength bounds the name of a dropped file, in bytes (without
// .csv).
const MaxDropNameLength = 200

// ParseDropKey returns the account and file name of an object key of the
// form drop/{accountId}/{name}.csv, where name is 1 to MaxDropNameLength
// bytes of valid UTF-8 without a slash or a control character, and
// csv may be in any case. ok is false for any other key; csv is false for
// a key of that form whose name does not end in .csv.
func ParseDropKey(key string) (accountID, name string, csv, ok bool) {
	rest, ok := strings.CutPrefix(key, DropPrefix)
	if !ok {
		return "", "", false, false
	}
	accountID, file, ok := strings.Cut(rest, "/")
	if !ok || !isID(accountID) || file == "" || len(file) > MaxDropNameLength+len(".csv") || !utf8.ValidString(file) ||
		strings.ContainsFunc(file, func(r rune) bool { return r == '/' || unicode.IsControl(r) }) {
		return "", "", false, false
	}
	base := file[:len(file)-min(len(file), len(".csv"))]
	if !strings.EqualFold(file[len(base):], ".csv") || base == "" {
		return accountID, file, false, true
	}
	return accountID, file, true, true
}

// DropImportID is the id of the import of a dropped object: derived from
// the account and the object's ETag, so that the same object delivered or
// dropped again (under any name) is the same import, created once.
func DropImportID(accountID, eTag string) string {
	sum := sha256.Sum256([]byte(accountID + "\x00" + eTag))
	return "D" + strings.ToUpper(hex.EncodeToString(sum[:16]))
}

// isID reports whether s looks like an id this service makes: 1 to 64
// letters and digits.
func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// Template returns the CSV template for admins: the header row.
func (s *Service) Template(ctx context.Context, r licadmin.Request) ([]byte, error) {
	if _, err := licadmin.Admin(ctx, s.Store, r.Email); err != nil {
		return nil, err
	}
	return csvimport.Template(), nil
}

// Upload is the answer to POST /v1/imports: where and how to upload the
// file, until when.
type Upload struct {
	ImportID  string    `json:"importId"`
	UploadURL string    `json:"uploadUrl"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Method and Headers are how to send the file: PUT with exactly these
	// headers (the Content-Type is part of the signature).
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	// MaxBytes is the largest file that is imported.
	MaxBytes int64 `json:"maxBytes"`
}

// Create starts an import for the caller's account: it records a pending
// import and returns a presigned PUT for its file. Admins only.
func (s *Service) Create(ctx context.Context, r licadmin.Request, dryRun bool) (*Upload, error) {
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, err
	}
	if s.Files == nil {
		return nil, licadmin.Errorf(licadmin.EUNAVAILABLE, "imports are not available: no bucket is configured")
	}
	now := s.Now.Read()
	imp := &licadmin.Import{
		ID:              s.NewID(),
		Status:          licadmin.ImportPending,
		DryRun:          dryRun,
		Source:          licadmin.ImportSourceAPI,
		AccountID:       c.AccountID,
		Actor:           c.Email,
		SourceIP:        r.SourceIP,
		UploadExpiresAt: now.Add(UploadTTL),
		CreatedAt:       now,
		UpdatedAt:       now,
	}
	imp.Key, imp.ReportKey = ImportKey(c.AccountID, imp.ID), ReportKey(c.AccountID, imp.ID)
	url, err := s.Files.PresignUpload(ctx, imp.Key, ContentType, UploadTTL)
	if err != nil {
		return nil, err
	}
	up := &Upload{
		ImportID:  imp.ID,
		UploadURL: url,
		ExpiresAt: imp.UploadExpiresAt,
		Method:    "PUT",
		Headers:   map[string]string{"Content-Type": ContentType},
		MaxBytes:  s.maxFileBytes(),
	}
	if err := s.Store.CreateImport(ctx, c, imp, up, now); err != nil {
		return nil, err
	}
	return up, nil
}

// Get returns an import of the caller's account with, once it has ended, a
// presigned URL of its report. Admins only; ENOTFOUND for unknown ids and
// ids of other accounts alike.
func (s *Service) Get(ctx context.Context, r licadmin.Request, importID string) (*licadmin.Import, error) {
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, err
	}
	if !isID(importID) {
		return nil, licadmin.Errorf(licadmin.ENOTFOUND, "import %s not found", importID)
	}
	imp, err := s.Store.GetImport(ctx, c.AccountID, importID)
	if err != nil {
		return nil, err
	}
	imp.Progress()
	if err := s.withReportURL(ctx, imp); err != nil {
		return nil, err
	}
	return imp, nil
}

// Default and largest page of List.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// List returns a page of at most limit imports of the caller's account
// (DefaultListLimit when 0), newest first, uploaded and dropped alike,
// each with its report's URL once ended, and the position of the next
// page. Admins only; EINVALID for a limit out of range.
func (s *Service) List(ctx context.Context, r licadmin.Request, limit int, after []byte) ([]*licadmin.Import, []byte, error) {
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, nil, licadmin.Invalid("limit", "out_of_range", fmt.Sprintf("limit must be from 1 to %d", MaxListLimit))
	}
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, nil, err
	}
	imps, next, err := s.Store.ListImports(ctx, c.AccountID, limit, after)
	if err != nil {
		return nil, nil, err
	}
	for _, imp := range imps {
		if err := s.withReportURL(ctx, imp); err != nil {
			return nil, nil, err
		}
	}
	return imps, next, nil
}

// withReportURL gives an ended import the presigned URL of its report.
func (s *Service) withReportURL(ctx context.Context, imp *licadmin.Import) error {
	if (imp.Status != licadmin.ImportDone && imp.Status != licadmin.ImportFailed) || s.Files == nil {
		return nil
	}
	url, err := s.Files.PresignDownload(ctx, imp.ReportKey, fmt.Sprintf("import-%s-report.csv", imp.ID), ReportContentType, ReportURLTTL)
	if err != nil {
		return err
	}
	imp.ReportURL = &url
	return nil
}

func (s *Service) maxFileBytes() int64 {
	if s.MaxFileBytes > 0 {
		return s.MaxFileBytes
	}
	return DefaultMaxFileBytes
}

func (s *Service) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }
