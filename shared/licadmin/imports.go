package licadmin

import (
	"errors"
	"time"
	"unicode/utf8"
)

// ImportStatus is where a bulk import stands.
type ImportStatus string

// The statuses of an import, in the order it goes through them.
const (
	// ImportPending: created, waiting for the file's upload.
	ImportPending ImportStatus = "pending"
	// ImportRunning: the file arrived and its rows are being imported.
	ImportRunning ImportStatus = "running"
	// ImportDone: every row was read; the report lists the failed ones.
	ImportDone ImportStatus = "done"
	// ImportFailed: the file could not be imported (Error says why); the
	// rows before the problem were imported and are in the report.
	ImportFailed ImportStatus = "failed"
)

// Import is a bulk import of users from a CSV file uploaded to S3
// (docs/imports.md): what GET /v1/imports/{importId} shows, and the job
// state the import function keeps in the table.
type Import struct {
	ID     string       `json:"importId"`
	Status ImportStatus `json:"status"`
	DryRun bool         `json:"dryRun"`
	// Source tells how the file came: uploaded after POST /v1/imports
	// (ImportSourceAPI), or dropped in the bucket (ImportSourceDrop).
	Source ImportSource `json:"source"`
	// FileName is a dropped file's name (its key without drop/{accountId}/),
	// null for an uploaded one.
	FileName *string `json:"fileName"`
	// Rows counts the data rows read so far (blank lines aside); Created
	// the users created (in a dry run: that would be created); Failed the
	// rows that created no user; Unlicensed the users created without the
	// license their row asked for because the pool had none left. Every
	// failed and unlicensed row is in the report.
	Rows       int64 `json:"rows"`
	Created    int64 `json:"created"`
	Failed     int64 `json:"failed"`
	Unlicensed int64 `json:"unlicensed"`
	// BytesRead and BytesTotal show how far the import got through its
	// file, which rows cannot (their count is known only at the end): the
	// file position after the last committed chunk, and the file's size.
	// Both are null while the import is pending (no file yet); once it is
	// done BytesRead is BytesTotal. Set by Progress.
	BytesRead  *int64 `json:"bytesRead"`
	BytesTotal *int64 `json:"bytesTotal"`
	// ReportURL is a presigned GET of the report CSV once the import has
	// ended (done or failed), null before.
	ReportURL *string `json:"reportUrl"`
	// Error says why a failed import stopped; null otherwise.
	Error     *ImportError `json:"error"`
	CreatedAt time.Time    `json:"createdAt"`
	UpdatedAt time.Time    `json:"updatedAt"`

	AccountID string `json:"-"`
	// Actor is the admin who created the import, or for a dropped file the
	// S3 principal that wrote it; SourceIP is where from: the users it
	// creates are audited as created by that actor.
	Actor    string `json:"-"`
	SourceIP string `json:"-"`
	// UploadExpiresAt is when the upload URL stops working: an import
	// still pending after it received no file.
	UploadExpiresAt time.Time `json:"uploadExpiresAt"`
	// Key is the object key the upload URL was signed for; ReportKey is
	// where the report is written.
	Key       string `json:"-"`
	ReportKey string `json:"-"`
	// Object is the upload being imported, set when the import starts.
	Object     ImportObject     `json:"-"`
	Checkpoint ImportCheckpoint `json:"-"`
	// LeaseOwner is the invocation importing rows until LeaseUntil; no
	// other may commit a chunk meanwhile.
	LeaseOwner string    `json:"-"`
	LeaseUntil time.Time `json:"-"`
}

// Progress sets BytesRead and BytesTotal from the job state: the
// checkpoint's offset and the object's size once the file arrived.
func (imp *Import) Progress() {
	if imp.Status == ImportPending {
		imp.BytesRead, imp.BytesTotal = nil, nil
		return
	}
	read, total := imp.Checkpoint.Offset, imp.Object.Size
	if imp.Status == ImportDone {
		read = total
	}
	imp.BytesRead, imp.BytesTotal = &read, &total
}

// ImportSource is how an import's file arrived.
type ImportSource string

// The sources of an import.
const (
	// ImportSourceAPI: an admin called POST /v1/imports and uploaded the
	// file to the URL it answered.
	ImportSourceAPI ImportSource = "api"
	// ImportSourceDrop: a system with write access to the bucket's drop/
	// prefix put the file at drop/{accountId}/{name}.csv, no API call
	// first. Its actor is the S3 principal, which is no admin of the
	// account: its chunks check no admin, and its end emails the
	// account's admins.
	ImportSourceDrop ImportSource = "drop"
)

// ImportError is why an import failed: a stable code, a message saying what
// to fix, and the file's line when it is about one.
type ImportError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Line    int64  `json:"line,omitempty"`
}

// ImportObject identifies the uploaded object an import reads. The job is
// keyed on it: another upload to the same key (another ETag or version) is
// never mixed into a running import.
type ImportObject struct {
	Bucket    string
	Key       string
	VersionID string
	ETag      string
	Size      int64
}

// ImportCheckpoint is how far an import got. It is committed in the same
// transaction as each chunk of rows, so a chunk is written exactly once
// whatever stops the function.
type ImportCheckpoint struct {
	// Seq counts the chunks committed.
	Seq int64
	// Offset and Line are the file position after the last committed row.
	Offset int64
	Line   int64
	// Header is the file's header as the CSV reader describes it (JSON),
	// recorded with the first chunk.
	Header string
	// Available is, in a dry run, how many licenses of each tier the dry
	// run still counts as available; nil before the first chunk.
	Available map[Tier]int64
}

// Report codes: why a row of an import created no user, or no license.
// Those that are also API error codes have the same value; the CSV reader
// adds its own for rows it cannot read (bad_encoding, malformed_row,
// too_many_fields).
const (
	RowInvalidEmail      = "invalid_email"
	RowMissingField      = "missing_field"
	RowInvalidName       = "invalid_name"
	RowUnknownLanguage   = "unknown_language"
	RowUnknownTier       = "unknown_tier"
	RowDuplicateInFile   = "duplicate_in_file"
	RowEmailTaken        = EEMAILTAKEN
	RowDomainNotApproved = EDOMAINNOTAPPROVED
	RowNoLicense         = ENOLICENSE
)

// ErrImportLeaseLost means the invocation no longer holds the import's
// lease (another one took over, or the import ended): it must stop; the
// write that found out wrote nothing.
var ErrImportLeaseLost = errors.New("import lease lost")

// ErrImportExists means a dropped file's import was already recorded: the
// same object (its ETag) delivered or dropped again.
var ErrImportExists = errors.New("the import of this object exists")

// ErrImportNotClaimed means an import could not be claimed: it ended,
// another invocation holds it, or the object is another upload than the
// one it reads.
var ErrImportNotClaimed = errors.New("import not claimed")

// ImportRow is a row of an import that creates a user.
type ImportRow struct {
	// Line is the file's line the row starts on.
	Line int64
	// User is the user as written, without a license: the store gives it
	// the license of Tier when the pool has one.
	User *User
	// Domain must be approved for the account when the row is written; ""
	// for public webmail domains.
	Domain string
	// Tier is the license the row asks for; "" for none.
	Tier Tier
}

// ImportFailure is a row of an import's report: a row that created no
// user, or (Created) one whose user was created without the license it
// asked for.
type ImportFailure struct {
	Line    int64
	Email   string
	Code    string
	Message string
	Created bool
}

// MaxReportEmailBytes and MaxReportMessageBytes bound a report row's email
// and message as stored: a row's email is whatever the file's field held
// (up to a record's 64 KiB), and messages may quote a field. A chunk of
// such rows must stay well within TransactWriteItems' 4 MB.
const (
	MaxReportEmailBytes   = 320
	MaxReportMessageBytes = 1024
)

// Clip returns s cut to at most max bytes, at a UTF-8 boundary, ending in
// "…" when it was cut.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// MaxChunkItems is the most items one import chunk's transaction may
// hold, DynamoDB's limit for TransactWriteItems: the importer fills chunks
// up to it and the store refuses a chunk over it.
const MaxChunkItems = 100

// ImportChunk is one transaction's worth of rows of an import.
type ImportChunk struct {
	// Import is the import as claimed: its lease owner and checkpoint are
	// the chunk's condition.
	Import *Import
	// Rows create users, in file order; Failures are rows already known
	// to create none.
	Rows     []ImportRow
	Failures []ImportFailure
	// Read counts the data rows the chunk covers.
	Read int64
	// Offset, Line and Header are the checkpoint after the chunk.
	Offset int64
	Line   int64
	Header string
	// LeaseUntil renews the lease.
	LeaseUntil time.Time
	// RequestID is the invocation's id, for the audit records.
	RequestID string
	Now       time.Time
}

// ImportChunkResult is what a committed chunk wrote.
type ImportChunkResult struct {
	// Created are the users created (in a dry run: that would be), each
	// with the license it got.
	Created []*User
	// Failures are the chunk's report rows.
	Failures []ImportFailure
	// Import is the import as it is after the chunk.
	Import *Import
}

// ImportLookup is what the rows of a chunk find in the table before they
// are written: what a dry run relies on, and what spares a real run most
// cancelled transactions.
type ImportLookup struct {
	// Taken maps each email that belongs to a user to the id of the import
	// that created it ("" when no import did).
	Taken map[string]string
	// Approved tells which domains are approved for the account.
	Approved map[string]bool
	// Seen holds, in a dry run, the emails of earlier rows of the import.
	Seen map[string]bool
}

// ErrImportFileChanged means the uploaded file an import reads was replaced
// by another upload, or deleted, while it was being imported.
var ErrImportFileChanged = errors.New("the uploaded file changed or disappeared")

// ErrImportFileMissing means the uploaded file an import reads is gone:
// deleted, or expired by the bucket's lifecycle rule before the import
// (or its retry) read it. No retry can bring it back.
var ErrImportFileMissing = errors.New("the uploaded file is missing")
