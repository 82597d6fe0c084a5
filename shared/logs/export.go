package logs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/csvsafe"
	"licenseadmin/shared/licadmin"
)

// Exports run asynchronously: the request records a running export (in
// the transaction of its audit and idempotency records) and puts a job on
// the export queue; the export function consumes the queue, streams the
// entries page by page into a multipart S3 upload, never holding the file
// in memory, and marks the export done or failed. The queue gives retries
// and a dead-letter queue for free, and the local stack serves it like the
// usage queue. An export that no job finishes in ExportDeadline answers
// failed, so a lost job is never "running" forever.

// ExportStore is what exports need from storage.
type ExportStore interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	FindUser(ctx context.Context, userID, email string) (*licadmin.User, error)
	CreateExport(ctx context.Context, c *licadmin.Caller, x *licadmin.Export, response any, now time.Time) error
	GetExport(ctx context.Context, exportID string) (*licadmin.Export, error)
	FinishExport(ctx context.Context, exportID string, status licadmin.ExportStatus, rows int64, reason string, now time.Time) (bool, error)
	ScanLogs(ctx context.Context, userID string, gen int64, r licadmin.LogRange, now time.Time, fn func(licadmin.LogEntry) error) error
}

// Queue sends export jobs to the export function.
type Queue interface {
	Send(ctx context.Context, body []byte) error
}

// Objects stores export files (shared/s3files in S3).
type Objects interface {
	// Write stores at key what write writes, streamed in parts: the file
	// is never whole in memory.
	Write(ctx context.Context, key, contentType string, write func(io.Writer) error) error
	// PresignDownload returns a URL that GETs key, as an attachment named
	// filename of type contentType, for ttl.
	PresignDownload(ctx context.Context, key, filename, contentType string, ttl time.Duration) (string, error)
	// Delete deletes the object key (none is no error).
	Delete(ctx context.Context, key string) error
	// DeletePrefix deletes every object whose key starts with prefix and
	// returns how many it deleted: the files of a purged log generation.
	DeletePrefix(ctx context.Context, prefix string) (int, error)
}

// Exports applies the export rules and runs export jobs.
type Exports struct {
	Store   ExportStore
	Queue   Queue
	Objects Objects
	Now     licadmin.Clock
	NewID   licadmin.IDSource
	Logger  *slog.Logger
	// MaxAttempts is how many times a job is tried before its export is
	// marked failed; it matches the queue's maxReceiveCount.
	MaxAttempts int
}

// Export timing.
const (
	// ExportDeadline is how long a running export may take, all retries
	// included, before it answers failed.
	ExportDeadline = 30 * time.Minute
	// URLTTL is how long a download URL works.
	URLTTL = 15 * time.Minute
	// DefaultMaxAttempts is MaxAttempts when unset.
	DefaultMaxAttempts = 3
)

// ExportInput is the body of an export request.
type ExportInput struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Type   string `json:"type"`
	Format string `json:"format"`
}

// Accepted is the answer to an export request.
type Accepted struct {
	ExportID string `json:"exportId"`
}

// ExportView is an export as clients see it. URL is a presigned GET of the
// CSV while the export is done.
type ExportView struct {
	ExportID  string                `json:"exportId"`
	Status    licadmin.ExportStatus `json:"status"`
	URL       *string               `json:"url"`
	Rows      *int64                `json:"rows"`
	Error     *string               `json:"error"`
	UserID    string                `json:"userId"`
	From      time.Time             `json:"from"`
	To        time.Time             `json:"to"`
	CreatedAt time.Time             `json:"createdAt"`
}

// job is the body of an export queue message: an export to run, or the
// export files of a log purge to delete (PurgeFiles).
type job struct {
	ExportID string     `json:"exportId,omitempty"`
	Purge    *FilePurge `json:"purge,omitempty"`
}

// valid reports whether j is exactly one kind of job, with what that kind
// needs.
func (j job) valid() bool {
	if j.Purge != nil {
		return j.ExportID == "" && j.Purge.AccountID != "" && j.Purge.UserID != ""
	}
	return j.ExportID != ""
}

// Request starts exporting the log of user userID of the caller's account
// for the range in (the same parameters and defaults as listing) and
// returns the export's id. Admins only; ENOTFOUND for unknown users and
// users of other accounts; EINVALID for a bad range or a format other than
// csv.
func (x *Exports) Request(ctx context.Context, r licadmin.Request, userID string, in ExportInput) (*Accepted, error) {
	rg, err := parseExportInput(in, x.Now.Read())
	if err != nil {
		return nil, err
	}
	c, u, err := licadmin.AdminAndUser(ctx, x.Store, r.Email, userID)
	if err != nil {
		return nil, err
	}
	return x.start(ctx, c, u, rg, false)
}

// RequestMine starts exporting the caller's own journal (any user, admin
// or not) for the range in, as Request does for an admin: the export is
// the caller's alone to read. EFORBIDDEN when the token's email is no
// user's; EINVALID for a bad range or format.
func (x *Exports) RequestMine(ctx context.Context, r licadmin.Request, in ExportInput) (*Accepted, error) {
	rg, err := parseExportInput(in, x.Now.Read())
	if err != nil {
		return nil, err
	}
	c, _, err := x.Store.LoadCaller(ctx, r.Email)
	if err != nil {
		return nil, err
	}
	if err := licadmin.RequireCaller(c); err != nil {
		return nil, err
	}
	me, err := x.Store.FindUser(ctx, c.UserID, "")
	if err != nil {
		return nil, err
	}
	if me == nil || me.AccountID != c.AccountID {
		return nil, licadmin.Errorf(licadmin.EFORBIDDEN, "no user of any account has this token's email")
	}
	return x.start(ctx, c, me, rg, true)
}

// parseExportInput checks an export request's format and range.
func parseExportInput(in ExportInput, now time.Time) (licadmin.LogRange, error) {
	if in.Format != "" && in.Format != "csv" {
		return licadmin.LogRange{}, licadmin.Invalid("format", "unknown_format", "format must be csv")
	}
	return ParseRange(in.From, in.To, in.Type, now)
}

// start records a running export of u's journal asked by c (own: c is u,
// exporting its own) and queues its job.
func (x *Exports) start(ctx context.Context, c *licadmin.Caller, u *licadmin.User, rg licadmin.LogRange, own bool) (*Accepted, error) {
	now := x.Now.Read()
	if x.Queue == nil {
		return nil, errors.New("exports: no export queue is configured (EXPORT_QUEUE_URL)")
	}
	id := x.NewID()
	exp := &licadmin.Export{
		ID: id, AccountID: c.AccountID, UserID: u.ID, LogGeneration: u.LogGeneration, Range: rg,
		Status: licadmin.ExportRunning, Key: ObjectKey(c.AccountID, u.ID, u.LogGeneration, id),
		CreatedBy: c.Email, CreatedByID: c.UserID, Own: own, CreatedAt: now,
	}
	out := &Accepted{ExportID: id}
	if err := x.Store.CreateExport(ctx, c, exp, out, now); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(job{ExportID: id})
	if err := x.Queue.Send(ctx, body); err != nil {
		// The export exists (and a retry with the same Idempotency-Key
		// replays this answer): it shows as failed, never as running.
		x.logger().ErrorContext(ctx, "export job not queued", "exportId", id, "err", err.Error())
		if _, ferr := x.Store.FinishExport(ctx, id, licadmin.ExportFailed, 0, "the export could not be started; request it again", x.Now.Read()); ferr != nil {
			x.logger().ErrorContext(ctx, "export not marked failed", "exportId", id, "err", ferr.Error())
		}
	}
	return out, nil
}

// ObjectKey is where the CSV of an export is stored: under the prefix of
// the user's log generation it holds (GenerationPrefix), so that the purge
// of a generation deletes its files with its entries.
func ObjectKey(accountID, userID string, gen int64, exportID string) string {
	return GenerationPrefix(accountID, userID, gen) + exportID + ".csv"
}

// UserPrefix starts the keys of every export file of a user: the purge of
// a deleted user deletes them all.
func UserPrefix(accountID, userID string) string {
	return "exports/" + accountID + "/" + userID + "/"
}

// GenerationPrefix starts the keys of the export files of one log
// generation of a user.
func GenerationPrefix(accountID, userID string, gen int64) string {
	return UserPrefix(accountID, userID) + strconv.FormatInt(gen, 10) + "/"
}

// Get returns an export to the user who asked for it: the user itself for
// an export of its own journal, the admin for an export of a user's logs
// (while still an admin). Anyone else, of this account or another, gets
// ENOTFOUND, exactly as for an unknown id; a caller who is no user gets
// EFORBIDDEN. A done export whose user's log generation changed since
// (license removed or transferred, user deleted) answers failed without a
// URL: those logs are deleted.
func (x *Exports) Get(ctx context.Context, r licadmin.Request, exportID string) (*ExportView, error) {
	exp, err := x.Store.GetExport(ctx, exportID)
	if err != nil {
		return nil, err
	}
	var ids []string
	if exp != nil {
		ids = []string{exp.UserID}
	}
	c, us, err := x.Store.LoadCaller(ctx, r.Email, ids...)
	if err != nil {
		return nil, err
	}
	if err := licadmin.RequireCaller(c); err != nil {
		return nil, err
	}
	if !askedBy(exp, c) {
		return nil, licadmin.Errorf(licadmin.ENOTFOUND, "export %s not found", exportID)
	}
	v := &ExportView{ExportID: exp.ID, Status: exp.Status, UserID: exp.UserID, From: exp.Range.From, To: exp.Range.To, CreatedAt: exp.CreatedAt}
	fail := func(reason string) {
		v.Status, v.Error = licadmin.ExportFailed, &reason
	}
	u := us[0]
	switch {
	case u == nil || u.AccountID != exp.AccountID || u.LogGeneration != exp.LogGeneration:
		fail("the user's logs were deleted since the export was requested")
	case exp.Status == licadmin.ExportRunning && x.Now.Read().Sub(exp.CreatedAt) > ExportDeadline:
		fail("the export did not finish in time; request it again")
	case exp.Status == licadmin.ExportFailed:
		fail(exp.Error)
	case exp.Status == licadmin.ExportDone:
		if x.Objects == nil {
			return nil, errors.New("exports: no bucket is configured (BUCKET_NAME)")
		}
		url, err := x.Objects.PresignDownload(ctx, exp.Key, exportFilename(exp), csvContentType, URLTTL)
		if err != nil {
			return nil, fmt.Errorf("presign export %s: %w", exp.ID, err)
		}
		v.URL, v.Rows = &url, &exp.Rows
	}
	return v, nil
}

// askedBy reports whether c may read exp: c asked for it, in the account
// it belongs to, and still has the rights it asked with (an admin export
// needs an admin). Exports recorded before CreatedByID existed are
// matched on the asker's email.
func askedBy(exp *licadmin.Export, c *licadmin.Caller) bool {
	if exp == nil || exp.AccountID != c.AccountID {
		return false
	}
	if exp.CreatedByID != "" && exp.CreatedByID != c.UserID || exp.CreatedByID == "" && exp.CreatedBy != c.Email {
		return false
	}
	return exp.Own || c.IsAdmin()
}

func exportFilename(exp *licadmin.Export) string {
	return "logs-" + exp.UserID + "-" + exp.Range.From.Format("20060102") + "-" + exp.Range.To.Format("20060102") + ".csv"
}

// PurgeFiles queues the deletion of the export files of a log purge: the
// export function, which writes them, deletes them (DeleteFiles), so that
// the table stream's function, which purges the logs, links no S3 client.
// An error means the purge may be tried again.
func (x *Exports) PurgeFiles(ctx context.Context, f FilePurge) error {
	if x.Queue == nil {
		return errors.New("exports: no export queue is configured (EXPORT_QUEUE_URL)")
	}
	body, _ := json.Marshal(job{Purge: &f})
	return x.Queue.Send(ctx, body)
}

// DeleteFiles deletes the export files f names. Deletions are idempotent:
// a job interrupted anywhere simply runs again.
func (x *Exports) DeleteFiles(ctx context.Context, f FilePurge) error {
	if x.Objects == nil {
		return errors.New("exports: no bucket is configured (BUCKET_NAME)")
	}
	for _, prefix := range f.Prefixes() {
		n, err := x.Objects.DeletePrefix(ctx, prefix)
		if err != nil {
			return fmt.Errorf("delete the export files of %s: %w", f.UserID, err)
		}
		if n > 0 {
			x.logger().InfoContext(ctx, "export files deleted", "userId", f.UserID, "files", n)
		}
	}
	return nil
}

// HandleSQS is the export function's handler: it runs the job of each
// message (an export, or the deletion of a purge's files), and reports
// only the jobs that failed and may succeed when tried again, so that the
// queue redelivers just those. On the last attempt a failing export is
// marked failed instead; a failing deletion goes on to the dead-letter
// queue.
func (x *Exports) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, m := range ev.Records {
		var j job
		if err := json.Unmarshal([]byte(m.Body), &j); err != nil || !j.valid() {
			x.logger().ErrorContext(ctx, "export job dropped: malformed", "messageId", m.MessageId)
			continue
		}
		if j.Purge != nil {
			if err := x.DeleteFiles(ctx, *j.Purge); err != nil {
				x.logger().ErrorContext(ctx, "export files not deleted", "userId", j.Purge.UserID, "err", err.Error())
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			}
			continue
		}
		err := x.Run(ctx, j.ExportID)
		if err == nil {
			continue
		}
		attempt, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
		x.logger().ErrorContext(ctx, "export failed", "exportId", j.ExportID, "attempt", attempt, "err", err.Error())
		if attempt >= x.maxAttempts() {
			if _, ferr := x.Store.FinishExport(ctx, j.ExportID, licadmin.ExportFailed, 0, "the export failed; request it again", x.Now.Read()); ferr == nil {
				continue
			}
		}
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
	}
	return resp, nil
}

const csvContentType = "text/csv; charset=utf-8"

// CSVHeader is the header row of an export file.
var CSVHeader = []string{"time", "type", "message_ref", "recipients", "size_bytes", "source_ip", "event_id"}

// Run exports the entries of one export to its CSV object and marks it
// done. An unknown export or one that is not running any more is left as
// it is (a redelivered job); one whose user's logs were deleted meanwhile
// is marked failed. An error means the job may be tried again.
func (x *Exports) Run(ctx context.Context, exportID string) error {
	exp, err := x.Store.GetExport(ctx, exportID)
	if err != nil {
		return err
	}
	if exp == nil || exp.Status != licadmin.ExportRunning {
		return nil
	}
	u, err := x.Store.FindUser(ctx, exp.UserID, "")
	if err != nil {
		return err
	}
	if u == nil || u.AccountID != exp.AccountID || u.LogGeneration != exp.LogGeneration {
		_, err := x.Store.FinishExport(ctx, exp.ID, licadmin.ExportFailed, 0, "the user's logs were deleted since the export was requested", x.Now.Read())
		return err
	}
	if x.Objects == nil {
		return errors.New("exports: no bucket is configured (BUCKET_NAME)")
	}
	var rows int64
	err = x.Objects.Write(ctx, exp.Key, csvContentType, func(w io.Writer) error {
		return x.writeCSV(ctx, w, exp, &rows)
	})
	if err != nil {
		return fmt.Errorf("write export %s: %w", exp.ID, err)
	}
	// The generation may have gone while the file was written, and its
	// purge may have run before the file existed: look again, and delete
	// the file of a gone generation here.
	if u, err = x.Store.FindUser(ctx, exp.UserID, ""); err != nil {
		return err
	}
	if u == nil || u.AccountID != exp.AccountID || u.LogGeneration != exp.LogGeneration {
		if err := x.Objects.Delete(ctx, exp.Key); err != nil {
			return err
		}
		_, err := x.Store.FinishExport(ctx, exp.ID, licadmin.ExportFailed, 0, "the user's logs were deleted since the export was requested", x.Now.Read())
		return err
	}
	_, err = x.Store.FinishExport(ctx, exp.ID, licadmin.ExportDone, rows, "", x.Now.Read())
	return err
}

// writeCSV writes the export's entries as CSV, newest first, one page of
// the log at a time.
func (x *Exports) writeCSV(ctx context.Context, w io.Writer, exp *licadmin.Export, rows *int64) error {
	if _, err := io.WriteString(w, csvsafe.BOM); err != nil {
		return err
	}
	cw := csvsafe.NewWriter(w)
	if err := cw.Write(CSVHeader...); err != nil {
		return err
	}
	err := x.Store.ScanLogs(ctx, exp.UserID, exp.LogGeneration, exp.Range, x.Now.Read(), func(e licadmin.LogEntry) error {
		*rows++
		return cw.Write(e.Time.UTC().Format(time.RFC3339Nano), string(e.Type), e.MessageRef,
			strings.Join(e.Recipients, "; "), strconv.FormatInt(e.Size, 10), e.SourceIP, e.ID)
	})
	if err != nil {
		return err
	}
	return cw.Flush()
}

func (x *Exports) maxAttempts() int {
	if x.MaxAttempts > 0 {
		return x.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (x *Exports) logger() *slog.Logger { return cmp.Or(x.Logger, slog.Default()) }
