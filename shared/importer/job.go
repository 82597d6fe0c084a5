package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"licenseadmin/shared/csvimport"
	"licenseadmin/shared/csvsafe"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/user"
)

// Event is what the import function receives: the bucket's S3
// notification, or a continuation it sent itself.
type Event struct {
	Records  []events.S3EventRecord `json:"Records,omitempty"`
	Continue *Continuation          `json:"continue,omitempty"`
}

// Continuation asks a fresh invocation to continue an import from its
// checkpoint.
type Continuation struct {
	AccountID string `json:"accountId"`
	ImportID  string `json:"importId"`
}

// Import codes of a failed import (ImportError.Code), besides the CSV
// reader's file codes (empty_file, missing_column, ...).
const (
	CodeFileTooLarge = "file_too_large"
	CodeFileChanged  = "file_changed"
	CodeFileMissing  = "file_missing"
	CodeNotAdmin     = "not_admin"
)

// Handler is the import function's Lambda handler.
func Handler(s *Service) func(context.Context, Event) error { return s.Handle }

// Handle imports what ev asks for. It returns an error only when a retry
// of the same event may succeed (a transient failure): Lambda retries it,
// and the retry continues from the checkpoint. Objects that are not an
// import of the account their key names are refused, logged and never
// imported.
func (s *Service) Handle(ctx context.Context, ev Event) error {
	if ev.Continue != nil {
		return s.resume(ctx, *ev.Continue)
	}
	if len(ev.Records) == 0 {
		s.logger().WarnContext(ctx, "import event ignored: neither an S3 notification nor a continuation")
		return nil
	}
	var errs []error
	for _, rec := range ev.Records {
		if err := s.start(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// start starts (or, for a repeated delivery, goes on with) the import that
// an uploaded object belongs to.
func (s *Service) start(ctx context.Context, rec events.S3EventRecord) error {
	key := rec.S3.Object.URLDecodedKey
	if key == "" {
		key, _ = url.QueryUnescape(rec.S3.Object.Key)
	}
	obj := licadmin.ImportObject{
		Bucket:    rec.S3.Bucket.Name,
		Key:       key,
		VersionID: rec.S3.Object.VersionID,
		ETag:      strings.Trim(rec.S3.Object.ETag, `"`),
		Size:      rec.S3.Object.Size,
	}
	log := s.logger().With("bucket", obj.Bucket, "key", obj.Key, "eTag", obj.ETag, "versionId", obj.VersionID, "size", obj.Size)
	switch {
	case !strings.HasPrefix(rec.EventName, "ObjectCreated:"):
		log.InfoContext(ctx, "import event ignored: not an object creation", "eventName", rec.EventName)
		return nil
	case obj.Bucket != s.Bucket:
		log.WarnContext(ctx, "upload rejected, not imported: not the import bucket", "want", s.Bucket)
		return nil
	}
	if strings.HasPrefix(key, DropPrefix) {
		return s.startDrop(ctx, log, rec, obj)
	}
	accountID, importID, ok := ParseKey(key)
	if !ok {
		log.WarnContext(ctx, "upload rejected, not imported: the key is not imports/{accountId}/{importId}.csv")
		return nil
	}
	return s.claim(ctx, log, accountID, importID, obj)
}

// claim claims the import of an object and runs it.
func (s *Service) claim(ctx context.Context, log *slog.Logger, accountID, importID string, obj licadmin.ImportObject) error {
	owner, now := s.NewID(), s.Now.Read()
	imp, err := s.Store.ClaimImport(ctx, accountID, importID, &obj, owner, now.Add(s.lease()), now)
	switch {
	case licadmin.ErrorCode(err) == licadmin.ENOTFOUND:
		log.WarnContext(ctx, "upload rejected, not imported: the account of the key has no import with this id (unknown id, or another account's)",
			"accountId", accountID, "importId", importID)
		return nil
	case errors.Is(err, licadmin.ErrImportNotClaimed):
		s.notClaimed(ctx, log, imp, &obj)
		return nil
	case err != nil:
		return err
	}
	log.InfoContext(ctx, "import started", "importId", imp.ID, "accountId", imp.AccountID, "dryRun", imp.DryRun, "owner", owner)
	return s.run(ctx, imp)
}

// startDrop starts (or, for a repeated delivery or the same object dropped
// again, goes on with) the import of a file dropped at
// drop/{accountId}/{name}.csv: the import is recorded on the fly, keyed on
// the account and the object's ETag, with the event's S3 principal as its
// actor. A malformed key, a file that is no CSV or an unknown account
// changes nothing: it is logged and counted.
func (s *Service) startDrop(ctx context.Context, log *slog.Logger, rec events.S3EventRecord, obj licadmin.ImportObject) error {
	accountID, name, csv, ok := ParseDropKey(obj.Key)
	switch {
	case !ok:
		return s.rejectDrop(ctx, log, DropMalformedKey, "the key is not drop/{accountId}/{name}.csv")
	case !csv:
		return s.rejectDrop(ctx, log, DropNotCSV, "the file name does not end in .csv")
	case obj.ETag == "":
		return s.rejectDrop(ctx, log, DropMalformedKey, "the event names no ETag")
	}
	actor := rec.PrincipalID.PrincipalID
	if actor == "" {
		actor = "s3:unknown-principal"
	}
	now := s.Now.Read()
	imp := &licadmin.Import{
		ID:              DropImportID(accountID, obj.ETag),
		Status:          licadmin.ImportPending,
		Source:          licadmin.ImportSourceDrop,
		FileName:        &name,
		AccountID:       accountID,
		Actor:           actor,
		SourceIP:        rec.RequestParameters.SourceIPAddress,
		Key:             obj.Key,
		Object:          obj,
		UploadExpiresAt: now,
		CreatedAt:       now,
		UpdatedAt:       now,
	}
	imp.ReportKey = ReportKey(accountID, imp.ID)
	log = log.With("importId", imp.ID, "accountId", accountID, "actor", actor)
	err := s.Store.CreateDropImport(ctx, imp, now)
	switch {
	case licadmin.ErrorCode(err) == licadmin.ENOTFOUND:
		return s.rejectDrop(ctx, log, DropUnknownAccount, "the key names no account")
	case errors.Is(err, licadmin.ErrImportExists):
		log.InfoContext(ctx, "dropped file already recorded (same object, same ETag): going on with its import, if anything is left")
	case err != nil:
		return err
	default:
		log.InfoContext(ctx, "dropped file recorded as an import")
	}
	return s.claim(ctx, log, accountID, imp.ID, obj)
}

// rejectDrop logs and counts a dropped file that imports nothing.
func (s *Service) rejectDrop(ctx context.Context, log *slog.Logger, reason, why string) error {
	log.WarnContext(ctx, "dropped file rejected, not imported: "+why, "reason", reason)
	if s.DropMetrics != nil {
		s.DropMetrics.DropRejected(reason)
	}
	return nil
}

// resume continues an import from its checkpoint in a fresh invocation.
func (s *Service) resume(ctx context.Context, c Continuation) error {
	log := s.logger().With("importId", c.ImportID, "accountId", c.AccountID)
	owner, now := s.NewID(), s.Now.Read()
	imp, err := s.Store.ClaimImport(ctx, c.AccountID, c.ImportID, nil, owner, now.Add(s.lease()), now)
	switch {
	case licadmin.ErrorCode(err) == licadmin.ENOTFOUND:
		log.WarnContext(ctx, "continuation ignored: no such import")
		return nil
	case errors.Is(err, licadmin.ErrImportNotClaimed):
		s.notClaimed(ctx, log, imp, nil)
		return nil
	case err != nil:
		return err
	}
	log.InfoContext(ctx, "import continued", "line", imp.Checkpoint.Line, "rows", imp.Rows, "owner", owner)
	return s.run(ctx, imp)
}

// notClaimed logs why an event changes nothing.
func (s *Service) notClaimed(ctx context.Context, log *slog.Logger, imp *licadmin.Import, obj *licadmin.ImportObject) {
	log = log.With("importId", imp.ID, "status", imp.Status)
	switch {
	case imp.Status == licadmin.ImportDone || imp.Status == licadmin.ImportFailed:
		log.InfoContext(ctx, "import event ignored: the import has ended (a repeated delivery, or another upload of its file)")
	case obj != nil && (imp.Object.ETag != obj.ETag || imp.Object.VersionID != obj.VersionID):
		log.WarnContext(ctx, "upload ignored: the import is already reading another upload of its file", "importing", imp.Object.ETag)
	default:
		log.InfoContext(ctx, "import event ignored: another invocation is importing it", "leaseUntil", imp.LeaseUntil)
	}
}

// job is one invocation's work on an import it holds.
type job struct {
	s        *Service
	imp      *licadmin.Import
	log      *slog.Logger
	deadline time.Time
	reqID    string
	header   string
	// next is a row read but not yet in a chunk.
	next *csvimport.Row
	// lookup is set when the next chunk's rows are to be looked up in the
	// table before its transaction (see commit).
	lookup bool
}

// run imports rows of imp, whose lease this invocation holds, until the
// file ends or the time is up; it gives the lease back when it stops
// early, so that a retry continues at once.
func (s *Service) run(ctx context.Context, imp *licadmin.Import) (err error) {
	j := &job{s: s, imp: imp, log: s.logger().With("importId", imp.ID, "accountId", imp.AccountID), deadline: s.deadline(ctx), reqID: imp.LeaseOwner}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		j.reqID = lc.AwsRequestID
	}
	start, rows, failed := time.Now(), imp.Rows, imp.Failed
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("import %s panicked: %v\n%s", imp.ID, p, debug.Stack())
		}
		if s.Metrics != nil {
			s.Metrics.Import(imp.AccountID, imp.DryRun, j.imp.Rows-rows, j.imp.Failed-failed, time.Since(start))
		}
		if err != nil {
			j.log.ErrorContext(ctx, "import interrupted; a retry continues from the checkpoint", "err", err.Error(), "line", j.imp.Checkpoint.Line)
			if rerr := s.Store.ReleaseImport(context.WithoutCancel(ctx), j.imp, s.Now.Read()); rerr != nil && !errors.Is(rerr, licadmin.ErrImportLeaseLost) {
				j.log.ErrorContext(ctx, "import lease not released; it expires by itself", "err", rerr.Error())
			}
		}
	}()
	return j.run(ctx)
}

func (j *job) run(ctx context.Context) error {
	s := j.s
	if max := s.maxFileBytes(); j.imp.Object.Size > max {
		return j.finish(ctx, licadmin.ImportFailed, &licadmin.ImportError{Code: CodeFileTooLarge,
			Message: fmt.Sprintf("the file has %d bytes; the most an import reads is %d (%d MiB): split it into several imports", j.imp.Object.Size, max, max>>20)})
	}
	if j.imp.DryRun && j.imp.Checkpoint.Available == nil {
		pool, err := s.Store.Pool(ctx, j.imp.AccountID)
		if err != nil {
			return err
		}
		j.imp.Checkpoint.Available = map[licadmin.Tier]int64{}
		for _, t := range pool.Tiers {
			j.imp.Checkpoint.Available[t.Tier] = t.Available
		}
	}
	body, err := s.Files.Open(ctx, j.imp.Object, j.imp.Checkpoint.Offset)
	if errors.Is(err, licadmin.ErrImportFileChanged) {
		return j.finish(ctx, licadmin.ImportFailed, &licadmin.ImportError{Code: CodeFileChanged,
			Message: "the uploaded file was replaced or deleted during the import; start a new import"})
	}
	if errors.Is(err, licadmin.ErrImportFileMissing) {
		return j.finish(ctx, licadmin.ImportFailed, &licadmin.ImportError{Code: CodeFileMissing,
			Message: "the uploaded file is gone: it was deleted, or expired before the import could read it; upload it again in a new import"})
	}
	if err != nil {
		return err
	}
	defer body.Close()
	rd, err := j.reader(body)
	var ferr *csvimport.FileError
	if errors.As(err, &ferr) {
		return j.finish(ctx, licadmin.ImportFailed, fileError(ferr))
	}
	if err != nil {
		return err
	}
	for step := 0; ; step++ {
		if step > 0 && s.Now.Read().After(j.deadline) {
			return j.continueLater(ctx)
		}
		rows, readErr := j.readChunk(rd)
		if !errors.As(readErr, &ferr) && readErr != nil && !errors.Is(readErr, io.EOF) {
			return readErr
		}
		if len(rows) > 0 {
			if err := j.commit(ctx, rows); err != nil {
				return j.stopped(ctx, err)
			}
		}
		switch {
		case ferr != nil:
			return j.finish(ctx, licadmin.ImportFailed, fileError(ferr))
		case errors.Is(readErr, io.EOF):
			if len(rows) > 0 && s.Now.Read().After(j.deadline) {
				return j.continueLater(ctx) // the report is the next step
			}
			return j.finish(ctx, licadmin.ImportDone, nil)
		}
	}
}

// reader opens the CSV reader at the checkpoint: from the top of the file
// for the first chunk, else resumed with the header the first one read.
func (j *job) reader(body io.Reader) (*csvimport.Reader, error) {
	cp := j.imp.Checkpoint
	if cp.Header == "" {
		rd, err := csvimport.Open(body)
		if err != nil {
			return nil, err
		}
		h, _ := json.Marshal(rd.Header())
		j.header = string(h)
		return rd, nil
	}
	var h csvimport.Header
	if err := json.Unmarshal([]byte(cp.Header), &h); err != nil {
		return nil, fmt.Errorf("import %s: checkpoint header %q: %w", j.imp.ID, cp.Header, err)
	}
	j.header = cp.Header
	return csvimport.Resume(body, h, csvimport.Position{Offset: cp.Offset, Line: cp.Line}), nil
}

// Item costs of a chunk's transaction (at most licadmin.MaxChunkItems; see
// package store): the import record, the admin check and the chunk's audit
// record; per row that creates a user its claim and user, plus a report
// row when it asks for a license that may be missing; a report row per
// failed row; the pool update when a row asks for a license, and one check
// per domain.
const (
	fixedItems   = 3
	rowItems     = 2
	licenseItems = 1
	failedItems  = 1
)

// PlainChunkRows is how many rows a chunk holds when every row creates a
// user without a license, all of one approved domain: the fixed items,
// the domain's check, then a claim and a user per row. The benchmark
// writes its BatchWriteItem floor in chunks of this size, so that the
// floor follows the import's shape.
func PlainChunkRows() int { return (licadmin.MaxChunkItems - fixedItems - 1) / rowItems }

// readChunk reads the rows of the next chunk: as many as fit in one
// transaction (ChunkRows at most), the row that does not fit kept for the
// next one. It returns io.EOF or a *csvimport.FileError with the rows read
// before.
func (j *job) readChunk(rd *csvimport.Reader) ([]*csvimport.Row, error) {
	budget := licadmin.MaxChunkItems - fixedItems
	var rows []*csvimport.Row
	tiers, domains := map[string]bool{}, map[string]bool{}
	for {
		row := j.next
		j.next = nil
		if row == nil {
			var err error
			if row, err = rd.Next(); err != nil {
				return rows, err
			}
		}
		cost := failedItems
		tier, domain := j.demand(row)
		if row.Code == "" {
			cost = rowItems
			if tier != "" {
				cost += licenseItems
				if len(tiers) == 0 {
					cost++ // the pool update, one for every tier
				}
			}
			if domain != "" && !domains[domain] {
				cost++
			}
		}
		if cost > budget || (j.s.ChunkRows > 0 && len(rows) == j.s.ChunkRows) {
			j.next = row
			return rows, nil
		}
		budget -= cost
		if tier != "" {
			tiers[tier] = true
		}
		if domain != "" {
			domains[domain] = true
		}
		rows = append(rows, row)
	}
}

// demand returns, at most, the tier and domain that a row may need in the
// transaction (a pessimistic guess from the raw fields).
func (j *job) demand(row *csvimport.Row) (tier, domain string) {
	if row.Code != "" {
		return "", ""
	}
	tier = strings.ToLower(strings.TrimSpace(row.License))
	if tier == "none" {
		tier = ""
	}
	if _, d, err := licadmin.ParseEmail("email", row.Email); err == nil && !j.s.Webmail.Has(d) {
		domain = d
	}
	return tier, domain
}

// commit validates a chunk's rows, checks them against the table, and
// writes them with the checkpoint after the last one.
//
// The transaction checks every row itself (a taken email, a domain not
// approved), and the store retries it without the rows it refused, so
// looking the rows up first only spares a cancelled transaction. A real
// import therefore looks up a chunk only after the previous one had rows
// refused, and stops once a lookup finds none: a clean file costs one
// write per chunk and no read; a file of taken emails (imported twice)
// costs one cancelled transaction, then a lookup per chunk. A dry run
// writes no user, so the lookup is how it finds them: always.
func (j *job) commit(ctx context.Context, rows []*csvimport.Row) error {
	s := j.s
	now := s.Now.Read()
	ch := &licadmin.ImportChunk{
		Import:     j.imp,
		Read:       int64(len(rows)),
		Offset:     rows[len(rows)-1].End.Offset,
		Line:       rows[len(rows)-1].End.Line,
		Header:     j.header,
		LeaseUntil: now.Add(s.lease()),
		RequestID:  j.reqID,
		Now:        now,
	}
	inChunk := map[string]bool{}
	var cands []licadmin.ImportRow
	for _, row := range rows {
		cand, fail := j.validate(row, now)
		switch {
		case fail != nil:
			ch.Failures = append(ch.Failures, *fail)
		case inChunk[cand.User.Email]:
			ch.Failures = append(ch.Failures, failure(row.Line, cand.User.Email, licadmin.RowDuplicateInFile, "an earlier row of the file has the same email"))
		case cand.User.Email == j.imp.Actor:
			ch.Failures = append(ch.Failures, failure(row.Line, cand.User.Email, licadmin.RowEmailTaken, "this is the email of the admin who started the import"))
		default:
			inChunk[cand.User.Email] = true
			cands = append(cands, *cand)
		}
	}
	lookup := j.imp.DryRun || j.lookup
	if len(cands) > 0 && !lookup {
		ch.Rows = cands
	}
	if len(cands) > 0 && lookup {
		var emails, domains []string
		seen := map[string]bool{}
		for _, c := range cands {
			emails = append(emails, c.User.Email)
			if c.Domain != "" && !seen[c.Domain] {
				seen[c.Domain] = true
				domains = append(domains, c.Domain)
			}
		}
		found, err := s.Store.LookupImportRows(ctx, j.imp, emails, domains)
		if err != nil {
			return err
		}
		for _, c := range cands {
			email := c.User.Email
			byImport, taken := found.Taken[email]
			switch {
			case taken && byImport == j.imp.ID, found.Seen[email]:
				ch.Failures = append(ch.Failures, failure(c.Line, email, licadmin.RowDuplicateInFile, "an earlier row of the file has the same email"))
			case taken:
				ch.Failures = append(ch.Failures, failure(c.Line, email, licadmin.RowEmailTaken, fmt.Sprintf("a user with the email %s already exists", email)))
			case c.Domain != "" && !found.Approved[c.Domain]:
				ch.Failures = append(ch.Failures, failure(c.Line, email, licadmin.RowDomainNotApproved,
					fmt.Sprintf("the domain %s is not approved for this account; request and verify it first", c.Domain)))
			default:
				ch.Rows = append(ch.Rows, c)
			}
		}
		j.lookup = len(ch.Rows) < len(cands)
	}
	res, err := s.Store.CommitImportChunk(ctx, ch)
	if err != nil {
		return err
	}
	if refused := refusals(res.Failures) - len(ch.Failures); refused > 0 {
		j.lookup = true
	}
	j.imp = res.Import
	j.log.DebugContext(ctx, "chunk committed", "line", j.imp.Checkpoint.Line, "created", len(res.Created), "failed", len(res.Failures))
	return nil
}

// refusals counts the failures that created no user (rows created without
// their license are failures too, in the report).
func refusals(fs []licadmin.ImportFailure) int {
	n := 0
	for _, f := range fs {
		if !f.Created {
			n++
		}
	}
	return n
}

// validate turns a row into a user to create, or the reason it cannot be,
// with the rules of POST /v1/users (package user).
func (j *job) validate(row *csvimport.Row, now time.Time) (*licadmin.ImportRow, *licadmin.ImportFailure) {
	email := strings.TrimSpace(row.Email)
	if row.Code != "" {
		return nil, failurePtr(row.Line, email, row.Code, row.Message)
	}
	for _, f := range []struct{ col, v string }{
		{csvimport.ColEmail, row.Email}, {csvimport.ColFirstName, row.FirstName}, {csvimport.ColLastName, row.LastName},
	} {
		if strings.TrimSpace(f.v) == "" {
			return nil, failurePtr(row.Line, email, licadmin.RowMissingField, f.col+" is empty; it is required")
		}
	}
	lang := strings.ToLower(strings.TrimSpace(row.Language))
	in := user.NewUser{Email: email, FirstName: row.FirstName, LastName: row.LastName, Language: lang, Role: string(licadmin.RoleUser)}
	normalized, domain, fields := user.Validate(in)
	for _, f := range fields {
		switch f.Field {
		case "email":
			return nil, failurePtr(row.Line, email, licadmin.RowInvalidEmail, "the email is not a valid address like name@example.com")
		case "firstName", "lastName":
			col := csvimport.ColFirstName
			if f.Field == "lastName" {
				col = csvimport.ColLastName
			}
			return nil, failurePtr(row.Line, email, licadmin.RowInvalidName, fmt.Sprintf("%s must be at most %d characters, without control characters", col, user.MaxNameLength))
		case "language":
			return nil, failurePtr(row.Line, email, licadmin.RowUnknownLanguage, fmt.Sprintf("language %q is not one of %s (empty means en)", lang, strings.Join(user.Languages, ", ")))
		default:
			return nil, failurePtr(row.Line, email, licadmin.RowMissingField, fmt.Sprintf("%s is invalid (%s)", f.Field, f.Code))
		}
	}
	var tier licadmin.Tier
	if lic := strings.ToLower(strings.TrimSpace(row.License)); lic != "" && lic != "none" {
		t, err := licadmin.ParseTier(csvimport.ColLicense, lic)
		if err != nil {
			return nil, failurePtr(row.Line, normalized, licadmin.RowUnknownTier, fmt.Sprintf("license %q is not one of eco, advanced, pro (empty or none for no license)", lic))
		}
		tier = t
	}
	if lang == "" {
		lang = "en"
	}
	if j.s.Webmail.Has(domain) {
		domain = ""
	}
	return &licadmin.ImportRow{
		Line:   row.Line,
		Domain: domain,
		Tier:   tier,
		User: &licadmin.User{
			ID:        j.s.NewID(),
			AccountID: j.imp.AccountID,
			Email:     normalized,
			FirstName: strings.TrimSpace(row.FirstName),
			LastName:  strings.TrimSpace(row.LastName),
			Language:  lang,
			Role:      licadmin.RoleUser,
			Status:    licadmin.StatusPending,
			Security:  licadmin.Security{ProtectedReplies: "none"},
			CreatedAt: now,
			UpdatedAt: now,
			Version:   1,
		},
	}, nil
}

func failure(line int64, email, code, msg string) licadmin.ImportFailure {
	return licadmin.ImportFailure{Line: line, Email: email, Code: code, Message: msg}
}

func failurePtr(line int64, email, code, msg string) *licadmin.ImportFailure {
	f := failure(line, email, code, msg)
	return &f
}

// stopped handles a chunk that could not be committed: another invocation
// took over (nothing to do), the admin lost its rights (the import fails),
// or a transient error (returned, for a retry).
func (j *job) stopped(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, licadmin.ErrImportLeaseLost):
		j.log.WarnContext(ctx, "import taken over by another invocation; this one stops")
		return nil
	case licadmin.ErrorCode(err) == licadmin.EFORBIDDEN:
		return j.finish(ctx, licadmin.ImportFailed, &licadmin.ImportError{Code: CodeNotAdmin, Message: licadmin.ErrorMessage(err)})
	}
	return err
}

// continueLater gives the lease back and starts a fresh invocation that
// continues from the checkpoint. If that invocation cannot be started, the
// error makes Lambda retry this event, which continues just the same.
func (j *job) continueLater(ctx context.Context) error {
	if err := j.s.Store.ReleaseImport(ctx, j.imp, j.s.Now.Read()); err != nil {
		return j.stopped(ctx, err)
	}
	if err := j.s.Invoker.Invoke(ctx, Event{Continue: &Continuation{AccountID: j.imp.AccountID, ImportID: j.imp.ID}}); err != nil {
		return fmt.Errorf("continue import %s in a fresh invocation: %w", j.imp.ID, err)
	}
	j.log.InfoContext(ctx, "import continues in a fresh invocation", "line", j.imp.Checkpoint.Line, "rows", j.imp.Rows)
	return nil
}

// finish writes the report and ends the import.
func (j *job) finish(ctx context.Context, status licadmin.ImportStatus, ierr *licadmin.ImportError) error {
	s := j.s
	if ierr != nil && ierr.Line > 0 {
		f := failure(ierr.Line, "", ierr.Code, ierr.Message)
		if err := s.Store.PutImportFailure(ctx, j.imp, f); err != nil {
			return err
		}
	}
	err := s.Files.Write(ctx, j.imp.ReportKey, ReportContentType, func(w io.Writer) error {
		cw := csvsafe.NewWriter(w)
		if err := cw.Write("line", "email", "code", "message"); err != nil {
			return err
		}
		if err := s.Store.ImportReport(ctx, j.imp.ID, func(f licadmin.ImportFailure) error {
			return cw.Write(strconv.FormatInt(f.Line, 10), f.Email, f.Code, f.Message)
		}); err != nil {
			return err
		}
		return cw.Flush()
	})
	if err != nil {
		return err
	}
	if err := s.Store.FinishImport(ctx, j.imp, status, ierr, s.Now.Read()); err != nil {
		return j.stopped(ctx, err)
	}
	attrs := []any{"status", status, "dryRun", j.imp.DryRun, "rows", j.imp.Rows, "created", j.imp.Created, "failed", j.imp.Failed, "unlicensed", j.imp.Unlicensed}
	if ierr != nil {
		attrs = append(attrs, "code", ierr.Code, "reason", ierr.Message, "line", ierr.Line)
	}
	j.log.InfoContext(ctx, "import ended", attrs...)
	return nil
}

func fileError(e *csvimport.FileError) *licadmin.ImportError {
	return &licadmin.ImportError{Code: e.Code, Message: e.Message, Line: e.Line}
}

// deadline is when an invocation stops taking new chunks.
func (s *Service) deadline(ctx context.Context) time.Time {
	margin := s.DeadlineMargin
	if margin == 0 {
		margin = DefaultDeadlineMargin
	}
	return licadmin.WorkDeadline(ctx, s.Now.Read(), margin, s.MaxRunTime)
}

func (s *Service) lease() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return DefaultLease
}
