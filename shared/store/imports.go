package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// Bulk imports. An import record (ACCT#<accountId>, IMPORT#<importId>)
// holds the job: its status, the uploaded object it reads, its counters,
// its checkpoint and its lease. Rows are written in chunks, each one
// TransactWriteItems of at most licadmin.MaxChunkItems items:
//
//   - the import record: checkpoint and counters, on the condition that the
//     writer still holds the lease and the checkpoint is the one it read,
//     so that a chunk is committed exactly once whatever retries;
//   - the admin's check (still an admin of the account);
//   - the pool update that reserves the chunk's licenses: per tier one ADD
//     and one condition (available_<tier> >= n), all in the one item a
//     transaction may touch once;
//   - one ConditionCheck per distinct email domain (approved for the
//     account); public webmail domains have none;
//   - per row: the email claim (attribute_not_exists) and the user;
//   - one audit record of the chunk (ActionUsersImport): the import is its
//     target, and it names every user the chunk creates with its email,
//     line and tier;
//   - a report row per row that created no user or no license.
//
// A cancelled chunk is not retried blindly: each failed condition (read
// from CancellationReasons) removes what caused it (a taken email, an
// unapproved domain) into the report, or lowers the licenses asked of a
// tier to what the pool has, and the rest is written again.

// ActionImportCreate is the audit action of POST /v1/imports; the users an
// import creates are audited a chunk at a time (ActionUsersImport).
const ActionImportCreate = "import.create"

// ImportRetention is how long an import record, its report rows and its
// dry-run markers are kept (the table's TTL deletes them after).
const ImportRetention = 30 * 24 * time.Hour

// CreateImport writes a new pending import of the caller's account, with
// its audit record and, when the request has an Idempotency-Key, the
// response to replay. It fails with EFORBIDDEN when the caller stopped
// being an admin.
func (s *Store) CreateImport(ctx context.Context, c *licadmin.Caller, imp *licadmin.Import, response any, now time.Time) error {
	t, p := s.begin(ctx, now)
	t.putNew(s.Table, importItem(imp), func(Item) error {
		return fmt.Errorf("import id %s collides with an existing import", imp.ID)
	})
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: imp.AccountID, Actor: c.Email, Action: ActionImportCreate, Target: imp.ID,
		Details: map[string]string{"dryRun": strconv.FormatBool(imp.DryRun), "key": imp.Key}, At: now})
	return s.commit(ctx, t, p, response, now)
}

// CreateDropImport records the pending import of a file dropped at
// drop/{accountId}/{name}.csv, with its audit record (the S3 principal as
// actor), on the conditions that the account exists and that no import
// has imp's id: the importer derives the id from the account and the
// object's ETag, so the same object delivered or dropped again creates
// nothing. It fails with ENOTFOUND for an unknown account and
// licadmin.ErrImportExists for an id already recorded.
func (s *Store) CreateDropImport(ctx context.Context, imp *licadmin.Import, now time.Time) error {
	t := &txn{}
	t.putNew(s.Table, importItem(imp), func(Item) error { return licadmin.ErrImportExists })
	ae := newExpr()
	t.check(s.Table, accountKey(imp.AccountID), fmt.Sprintf("attribute_exists(%s)", ae.n(attrPK)), ae, func(Item) error {
		return licadmin.Errorf(licadmin.ENOTFOUND, "account %s not found", imp.AccountID)
	})
	s.addAudit(ctx, t, Audit{AccountID: imp.AccountID, Actor: imp.Actor, Action: ActionImportCreate, Target: imp.ID,
		Details: map[string]string{"dryRun": "false", "key": imp.Key, "source": string(licadmin.ImportSourceDrop), "eTag": imp.Object.ETag},
		At:      now, SourceIP: imp.SourceIP})
	return s.transact(ctx, t)
}

// importItem is the record of a new pending import. It is in gsi1 under
// its account's imports (importsGSI1PK), sorted by creation time, which
// lists them newest first.
func importItem(imp *licadmin.Import) Item {
	it := importKey(imp.AccountID, imp.ID)
	it["importId"] = str(imp.ID)
	it["accountId"] = str(imp.AccountID)
	it["status"] = str(string(imp.Status))
	it["dryRun"] = boolean(imp.DryRun)
	it["source"] = str(string(imp.Source))
	if imp.FileName != nil {
		it["fileName"] = str(*imp.FileName)
	}
	it["actor"] = str(imp.Actor)
	it["sourceIp"] = str(imp.SourceIP)
	it["objKey"] = str(imp.Key)
	it["reportKey"] = str(imp.ReportKey)
	it["uploadExpiresAt"] = timestamp(imp.UploadExpiresAt)
	it["createdAt"] = timestamp(imp.CreatedAt)
	it["updatedAt"] = timestamp(imp.UpdatedAt)
	it[attrGSI1PK] = str(importsGSI1PK(imp.AccountID))
	it[attrGSI1SK] = str(formatTime(imp.CreatedAt) + "#" + imp.ID)
	it[attrTTL] = num(imp.CreatedAt.Add(ImportRetention).Unix())
	for _, n := range []string{"rows", "created", "failed", "unlicensed", "seq", "offset", "line", "leaseUntil"} {
		it[n] = num(0)
	}
	return it
}

// ListImports returns a page of at most limit imports of accountID, newest
// first, after the position after (from the previous page), and the
// position of the next page (nil on the last one). It fails with EINVALID
// for a position of another list.
func (s *Store) ListImports(ctx context.Context, accountID string, limit int, after []byte) ([]*licadmin.Import, []byte, error) {
	gpk := importsGSI1PK(accountID)
	from, err := decodePosition(after, gpk)
	if err != nil {
		return nil, nil, err
	}
	in := s.queryIndex(newExpr(), gpk)
	in.ExclusiveStartKey = from
	in.ScanIndexForward = aws.Bool(false)
	in.Limit = aws.Int32(int32(limit + 1)) // one more tells whether a next page exists
	out, err := s.DB.Query(ctx, in)
	if err != nil {
		return nil, nil, fmt.Errorf("query imports of %s: %w", accountID, err)
	}
	var imps []*licadmin.Import
	for i, it := range out.Items {
		if i == limit {
			return imps, encodePosition(out.Items[i-1]), nil
		}
		imps = append(imps, decodeImport(it))
	}
	return imps, nil, nil
}

// GetImport returns an import of accountID. It fails with ENOTFOUND when
// the account has no such import, whichever account has one by that id.
func (s *Store) GetImport(ctx context.Context, accountID, importID string) (*licadmin.Import, error) {
	it, err := s.getItem(ctx, importKey(accountID, importID))
	if err != nil {
		return nil, fmt.Errorf("get import %s: %w", importID, err)
	}
	if it == nil {
		return nil, licadmin.Errorf(licadmin.ENOTFOUND, "import %s not found", importID)
	}
	return decodeImport(it), nil
}

func decodeImport(it Item) *licadmin.Import {
	imp := &licadmin.Import{
		ID:         getS(it, "importId"),
		Status:     licadmin.ImportStatus(getS(it, "status")),
		DryRun:     getBool(it, "dryRun"),
		Source:     licadmin.ImportSource(getS(it, "source")),
		Rows:       getN(it, "rows"),
		Created:    getN(it, "created"),
		Failed:     getN(it, "failed"),
		Unlicensed: getN(it, "unlicensed"),
		CreatedAt:  getTime(it, "createdAt"),
		UpdatedAt:  getTime(it, "updatedAt"),
		AccountID:  getS(it, "accountId"),
		Actor:      getS(it, "actor"),
		SourceIP:   getS(it, "sourceIp"),
		Key:        getS(it, "objKey"),
		ReportKey:  getS(it, "reportKey"),
		Object: licadmin.ImportObject{
			Bucket:    getS(it, "objBucket"),
			Key:       getS(it, "objKey"),
			VersionID: getS(it, "objVersion"),
			ETag:      getS(it, "objEtag"),
			Size:      getN(it, "objSize"),
		},
		UploadExpiresAt: getTime(it, "uploadExpiresAt"),
		Checkpoint: licadmin.ImportCheckpoint{
			Seq:    getN(it, "seq"),
			Offset: getN(it, "offset"),
			Line:   getN(it, "line"),
			Header: getS(it, "header"),
		},
		LeaseOwner: getS(it, "leaseOwner"),
		LeaseUntil: time.UnixMilli(getN(it, "leaseUntil")).UTC(),
	}
	if m, ok := it["available"].(*types.AttributeValueMemberM); ok {
		imp.Checkpoint.Available = map[licadmin.Tier]int64{}
		for _, t := range licadmin.Tiers {
			imp.Checkpoint.Available[t] = getN(m.Value, string(t))
		}
	}
	if imp.Source == "" {
		imp.Source = licadmin.ImportSourceAPI // recorded before drops existed
	}
	if _, ok := it["fileName"]; ok {
		name := getS(it, "fileName")
		imp.FileName = &name
	}
	if code := getS(it, "errCode"); code != "" {
		imp.Error = &licadmin.ImportError{Code: code, Message: getS(it, "errMessage"), Line: getN(it, "errLine")}
	}
	return imp
}

// ClaimImport makes owner the only invocation that imports rows of an
// import, until until (a lease that each chunk renews). A pending import
// becomes running on obj, the upload its S3 event names; a running import
// whose lease is free or expired is taken over when obj is nil (a
// continuation) or the object it reads. It returns the import as claimed,
// licadmin.ErrImportNotClaimed with the import as it is when it cannot be claimed, and
// ENOTFOUND when the account has no such import.
func (s *Store) ClaimImport(ctx context.Context, accountID, importID string, obj *licadmin.ImportObject, owner string, until, now time.Time) (*licadmin.Import, error) {
	e := newExpr()
	st, running := e.n("status"), e.v(str(string(licadmin.ImportRunning)))
	expired := fmt.Sprintf("%s < %s", e.n("leaseUntil"), e.v(num(now.UnixMilli())))
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s",
		st, running, e.n("leaseOwner"), e.v(str(owner)), e.n("leaseUntil"), e.v(num(until.UnixMilli())),
		e.n("updatedAt"), e.v(timestamp(now)))
	var cond string
	if obj == nil {
		cond = fmt.Sprintf("%s = %s AND %s", st, running, expired)
	} else {
		etag, version := e.v(str(obj.ETag)), e.v(str(obj.VersionID))
		cond = fmt.Sprintf("%s = %s OR (%s = %s AND %s AND %s = %s AND %s = %s)",
			st, e.v(str(string(licadmin.ImportPending))), st, running, expired,
			e.n("objEtag"), etag, e.n("objVersion"), version)
		update += fmt.Sprintf(", %s = %s, %s = %s, %s = %s, %s = %s",
			e.n("objBucket"), e.v(str(obj.Bucket)), e.n("objEtag"), etag, e.n("objVersion"), version,
			e.n("objSize"), e.v(num(obj.Size)))
	}
	out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &s.Table,
		Key:                                 importKey(accountID, importID),
		UpdateExpression:                    &update,
		ConditionExpression:                 aws.String(fmt.Sprintf("attribute_exists(%s) AND (%s)", e.n(attrPK), cond)),
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           e.values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		if ccf.Item == nil {
			return nil, licadmin.Errorf(licadmin.ENOTFOUND, "import %s not found", importID)
		}
		return decodeImport(ccf.Item), licadmin.ErrImportNotClaimed
	case err != nil:
		return nil, fmt.Errorf("claim import %s: %w", importID, err)
	}
	return decodeImport(out.Attributes), nil
}

// ReleaseImport gives up imp's lease (held by imp.LeaseOwner) so that
// another invocation can continue at once. It returns licadmin.ErrImportLeaseLost when
// the lease was no longer held.
func (s *Store) ReleaseImport(ctx context.Context, imp *licadmin.Import, now time.Time) error {
	e := newExpr()
	return s.updateHeld(ctx, imp, e, fmt.Sprintf("SET %s = %s, %s = %s",
		e.n("leaseUntil"), e.v(num(0)), e.n("updatedAt"), e.v(timestamp(now))))
}

// FinishImport ends an import whose lease imp.LeaseOwner holds: done, or
// failed with ierr. It returns licadmin.ErrImportLeaseLost when the lease was no longer
// held. A dropped file's import queues, in the same transaction, one
// email to each admin of the account (at most maxDropNotices) with the
// counts and the import's id: nobody asked for the import through the
// API, so nobody would know it ended otherwise.
func (s *Store) FinishImport(ctx context.Context, imp *licadmin.Import, status licadmin.ImportStatus, ierr *licadmin.ImportError, now time.Time) error {
	e := newExpr()
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s",
		e.n("status"), e.v(str(string(status))), e.n("leaseUntil"), e.v(num(0)),
		e.n("updatedAt"), e.v(timestamp(now)), e.n("finishedAt"), e.v(timestamp(now)))
	if ierr != nil {
		update += fmt.Sprintf(", %s = %s, %s = %s, %s = %s", e.n("errCode"), e.v(str(ierr.Code)),
			e.n("errMessage"), e.v(str(ierr.Message)), e.n("errLine"), e.v(num(ierr.Line)))
	}
	if imp.Source != licadmin.ImportSourceDrop {
		return s.updateHeld(ctx, imp, e, update)
	}
	admins, err := s.AccountAdmins(ctx, imp.AccountID)
	if err != nil {
		return err
	}
	t := &txn{}
	t.update(s.Table, importKey(imp.AccountID, imp.ID), update, heldCond(e, imp), e, func(Item) error { return licadmin.ErrImportLeaseLost })
	for i, adm := range admins {
		if i == maxDropNotices {
			break
		}
		o := RecipientOutbox(licadmin.EmailImportEnded, adm, now)
		o.ID = "import-" + imp.ID + "-" + adm.ID
		o.Tier = ""
		o.Import = &ImportNotice{ImportID: imp.ID, Status: string(status), Rows: imp.Rows,
			Created: imp.Created, Failed: imp.Failed, Unlicensed: imp.Unlicensed}
		if imp.FileName != nil {
			o.Import.FileName = *imp.FileName
		}
		s.putOutbox(t, o)
	}
	return s.transact(ctx, t)
}

// maxDropNotices bounds the emails a dropped file's end queues: the
// import's update and the outbox items fit in one transaction.
const maxDropNotices = licadmin.MaxChunkItems - 1

// updateHeld applies update to imp's record on the condition that its
// lease is still held and its checkpoint is the one imp has.
func (s *Store) updateHeld(ctx context.Context, imp *licadmin.Import, e *expr, update string) error {
	return s.updateIf(ctx, importKey(imp.AccountID, imp.ID), update, heldCond(e, imp), e,
		licadmin.ErrImportLeaseLost, "update import "+imp.ID)
}

// heldCond is the condition that imp's lease is still its owner's and
// nothing was committed since imp was read.
func heldCond(e *expr, imp *licadmin.Import) string {
	return fmt.Sprintf("%s = %s AND %s = %s AND %s = %s",
		e.n("status"), e.v(str(string(licadmin.ImportRunning))),
		e.n("leaseOwner"), e.v(str(imp.LeaseOwner)), e.n("seq"), e.v(num(imp.Checkpoint.Seq)))
}

// chunkFailure is one failed condition of a chunk's transaction.
type chunkFailure struct {
	err    error  // a failure that ends the chunk (lease lost, forbidden, bug)
	row    int    // index in rows of a row refused (-1 when none)
	code   string // the row's report code
	msg    string
	domain string        // a domain refused (all its rows)
	tier   licadmin.Tier // a tier short of licenses
	avail  int64         // what the pool has of tier
}

var errChunkCondition = errors.New("chunk condition failed")

// CommitImportChunk writes one chunk of an import in one transaction (see
// the top of this file), retrying without the rows that a failed condition
// refused, and returns what it wrote. A dry run writes no user: the rows
// are checked against the table by LookupImportRows beforehand, licenses
// are counted against the pool as the dry run read it, and a marker per
// email finds duplicates across chunks. It fails with licadmin.ErrImportLeaseLost when
// another invocation took the import over, and EFORBIDDEN when its admin
// is no longer an admin of the account.
func (s *Store) CommitImportChunk(ctx context.Context, ch *licadmin.ImportChunk) (*licadmin.ImportChunkResult, error) {
	imp := ch.Import
	rows := append([]licadmin.ImportRow(nil), ch.Rows...)
	failures := append([]licadmin.ImportFailure(nil), ch.Failures...)
	grant := map[licadmin.Tier]int64{}
	for _, r := range rows {
		if r.Tier != "" {
			grant[r.Tier]++
		}
	}
	if imp.DryRun {
		for t, n := range grant {
			grant[t] = min(n, max(0, imp.Checkpoint.Available[t]))
		}
	}
	caller := &licadmin.Caller{Email: imp.Actor, AccountID: imp.AccountID, Role: licadmin.RoleAdmin}
	for attempt := 0; ; attempt++ {
		if attempt > len(ch.Rows)+len(licadmin.Tiers)+1 {
			return nil, fmt.Errorf("import %s: chunk at line %d cannot be committed: its conditions keep failing", imp.ID, ch.Line)
		}
		created, unlicensed := s.grantLicenses(rows, grant, ch.Now)
		all := append(append([]licadmin.ImportFailure(nil), failures...), unlicensed...)
		var refused []chunkFailure
		t := &txn{}
		s.importUpdate(t, ch, int64(len(rows)), int64(len(all)-len(unlicensed)), int64(len(unlicensed)), grant, &refused)
		if imp.Source != licadmin.ImportSourceDrop {
			// A dropped file's actor is an S3 principal, no user: the
			// bucket's IAM policy is its authority.
			s.callerCheck(t, caller)
			t.onFail[len(t.onFail)-1] = func(Item) error {
				refused = append(refused, chunkFailure{row: -1, err: licadmin.Errorf(licadmin.EFORBIDDEN,
					"%s, who started the import, is no longer an administrator of the account", imp.Actor)})
				return errChunkCondition
			}
		}
		if imp.DryRun {
			s.markSeen(t, ch, rows, &refused)
		} else {
			s.reserveLicenses(t, imp.AccountID, grant, &refused)
			s.checkDomains(t, imp.AccountID, rows, &refused)
			for i := range rows {
				s.putImportedUser(t, ch, i, created[i], &refused)
			}
			s.auditImported(ctx, t, ch, rows, created)
		}
		for _, f := range all {
			s.putReportRow(t, imp, f)
		}
		if len(t.items) > licadmin.MaxChunkItems {
			return nil, fmt.Errorf("import %s: a chunk of %d items exceeds the %d a transaction allows", imp.ID, len(t.items), licadmin.MaxChunkItems)
		}
		err := s.transact(ctx, t)
		if err == nil {
			return s.chunkResult(ch, created, all, grant), nil
		}
		if len(refused) == 0 {
			return nil, err
		}
		drop := map[int]chunkFailure{}
		for _, f := range refused {
			switch {
			case f.err != nil:
				return nil, f.err
			case f.row >= 0:
				drop[f.row] = f
			case f.domain != "":
				for i, r := range rows {
					if r.Domain == f.domain {
						drop[i] = f
					}
				}
			case f.tier != "":
				grant[f.tier] = min(grant[f.tier], max(0, f.avail))
			}
		}
		kept := rows[:0:0]
		for i, r := range rows {
			if f, ok := drop[i]; ok {
				failures = append(failures, licadmin.ImportFailure{Line: r.Line, Email: r.User.Email, Code: f.code, Message: f.msg})
				continue
			}
			kept = append(kept, r)
		}
		rows = kept
		for t, n := range grant {
			wanted := int64(0)
			for _, r := range rows {
				if r.Tier == t {
					wanted++
				}
			}
			grant[t] = min(n, wanted)
		}
	}
}

// grantLicenses returns the users of rows as they will be written: the
// first grant[t] rows asking for tier t get a license of it, the others
// none and a report row saying so.
func (s *Store) grantLicenses(rows []licadmin.ImportRow, grant map[licadmin.Tier]int64, now time.Time) ([]*licadmin.User, []licadmin.ImportFailure) {
	given := map[licadmin.Tier]int64{}
	users := make([]*licadmin.User, len(rows))
	var unlicensed []licadmin.ImportFailure
	for i, r := range rows {
		u := *r.User
		u.License = nil
		if r.Tier != "" {
			if given[r.Tier] < grant[r.Tier] {
				given[r.Tier]++
				u.License = &licadmin.License{Tier: r.Tier, AssignedAt: now}
			} else {
				unlicensed = append(unlicensed, licadmin.ImportFailure{Line: r.Line, Email: u.Email, Code: licadmin.RowNoLicense, Created: true,
					Message: fmt.Sprintf("the user was created without a license: no %s license is left in the pool", r.Tier)})
			}
		}
		users[i] = &u
	}
	return users, unlicensed
}

// importUpdate appends the import record's update: the checkpoint after the
// chunk and the counters, on the condition that the lease and checkpoint
// are still those the chunk was read with.
func (s *Store) importUpdate(t *txn, ch *licadmin.ImportChunk, created, failed, unlicensed int64, grant map[licadmin.Tier]int64, refused *[]chunkFailure) {
	imp := ch.Import
	e := newExpr()
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s, %s = %s, %s = %s ADD %s %s, %s %s, %s %s, %s %s",
		e.n("seq"), e.v(num(imp.Checkpoint.Seq+1)), e.n("offset"), e.v(num(ch.Offset)), e.n("line"), e.v(num(ch.Line)),
		e.n("header"), e.v(str(ch.Header)), e.n("leaseUntil"), e.v(num(ch.LeaseUntil.UnixMilli())),
		e.n("updatedAt"), e.v(timestamp(ch.Now)),
		e.n("rows"), e.v(num(ch.Read)), e.n("created"), e.v(num(created)),
		e.n("failed"), e.v(num(failed)), e.n("unlicensed"), e.v(num(unlicensed)))
	if imp.DryRun {
		avail := map[string]types.AttributeValue{}
		for _, tier := range licadmin.Tiers {
			avail[string(tier)] = num(imp.Checkpoint.Available[tier] - grant[tier])
		}
		update = fmt.Sprintf("SET %s = %s, ", e.n("available"), e.v(&types.AttributeValueMemberM{Value: avail})) + update[len("SET "):]
	}
	t.update(s.Table, importKey(imp.AccountID, imp.ID), update, heldCond(e, imp), e, func(Item) error {
		*refused = append(*refused, chunkFailure{row: -1, err: licadmin.ErrImportLeaseLost})
		return errChunkCondition
	})
}

// reserveLicenses appends the pool update that takes grant[t] licenses of
// each tier t, with one condition per tier (available_<tier> >= n): a
// transaction may touch the pool item once only. A failure reports what
// the pool has of each tier short of its grant.
func (s *Store) reserveLicenses(t *txn, accountID string, grant map[licadmin.Tier]int64, refused *[]chunkFailure) {
	e := newExpr()
	var adds, conds []string
	want := map[licadmin.Tier]int64{}
	for _, tier := range licadmin.Tiers {
		n := grant[tier]
		if n == 0 {
			continue
		}
		want[tier] = n
		q := e.v(num(n))
		adds = append(adds, fmt.Sprintf("%s %s, %s %s", e.n(assignedAttr(tier)), q, e.n(availableAttr(tier)), e.v(num(-n))))
		conds = append(conds, fmt.Sprintf("%s >= %s", e.n(availableAttr(tier)), q))
	}
	if len(adds) == 0 {
		return
	}
	t.update(s.Table, poolKey(accountID), "ADD "+strings.Join(adds, ", "), strings.Join(conds, " AND "), e,
		func(old Item) error {
			for tier, n := range want {
				if avail := getN(old, availableAttr(tier)); avail < n {
					*refused = append(*refused, chunkFailure{row: -1, tier: tier, avail: avail})
				}
			}
			return errChunkCondition
		})
}

// checkDomains appends one ConditionCheck per distinct domain of rows: it
// must be approved for the account.
func (s *Store) checkDomains(t *txn, accountID string, rows []licadmin.ImportRow, refused *[]chunkFailure) {
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Domain == "" || seen[r.Domain] {
			continue
		}
		seen[r.Domain] = true
		domain := r.Domain
		s.checkDomainApproved(t, accountID, domain, func(Item) error {
			*refused = append(*refused, chunkFailure{row: -1, domain: domain, code: licadmin.RowDomainNotApproved,
				msg: domainNotApproved(domain).Error()})
			return errChunkCondition
		})
	}
}

// putImportedUser appends row i's email claim and user; the chunk's audit
// record names them all (auditImported). The claim records the import, so
// that a later row with the same email is told apart (duplicate_in_file)
// from a user that existed (email_taken).
func (s *Store) putImportedUser(t *txn, ch *licadmin.ImportChunk, i int, u *licadmin.User, refused *[]chunkFailure) {
	imp := ch.Import
	claim := emailClaim(u)
	claim["importId"] = str(imp.ID)
	t.putNew(s.Table, claim, func(old Item) error {
		f := chunkFailure{row: i, code: licadmin.RowEmailTaken, msg: fmt.Sprintf("a user with the email %s already exists", u.Email)}
		if getS(old, "importId") == imp.ID {
			f.code, f.msg = licadmin.RowDuplicateInFile, "an earlier row of the file has the same email"
		}
		*refused = append(*refused, f)
		return errChunkCondition
	})
	it := userItem(u)
	it["importId"] = str(imp.ID)
	t.putNew(s.Table, it, func(Item) error {
		*refused = append(*refused, chunkFailure{row: -1, err: fmt.Errorf("user id %s collides with an existing user", u.ID)})
		return errChunkCondition
	})
}

// auditImported appends the chunk's audit record: the admin who started the
// import, from the IP it was started from, created these users (rows[i]
// is users[i]) in this invocation.
func (s *Store) auditImported(ctx context.Context, t *txn, ch *licadmin.ImportChunk, rows []licadmin.ImportRow, users []*licadmin.User) {
	if len(users) == 0 {
		return
	}
	imp := ch.Import
	subjects := make([]map[string]string, len(users))
	for i, u := range users {
		sub := map[string]string{"userId": u.ID, "email": u.Email, "role": string(u.Role), "line": strconv.FormatInt(rows[i].Line, 10)}
		if u.License != nil {
			sub["tier"] = string(u.License.Tier)
		}
		subjects[i] = sub
	}
	s.addAudit(ctx, t, Audit{AccountID: imp.AccountID, Actor: imp.Actor, Action: ActionUsersImport, Target: imp.ID,
		Details: map[string]string{"importId": imp.ID, "created": strconv.Itoa(len(users)),
			"firstLine": strconv.FormatInt(rows[0].Line, 10), "lastLine": strconv.FormatInt(rows[len(rows)-1].Line, 10)},
		Subjects: subjects, At: ch.Now, SourceIP: imp.SourceIP, RequestID: ch.RequestID})
}

// markSeen appends, in a dry run, a marker per email of rows: a marker that
// exists means an earlier chunk had the email.
func (s *Store) markSeen(t *txn, ch *licadmin.ImportChunk, rows []licadmin.ImportRow, refused *[]chunkFailure) {
	for i, r := range rows {
		it := importSeenKey(ch.Import.ID, r.User.Email)
		it["line"] = num(r.Line)
		it[attrTTL] = num(ch.Import.CreatedAt.Add(ImportRetention).Unix())
		t.putNew(s.Table, it, func(Item) error {
			*refused = append(*refused, chunkFailure{row: i, code: licadmin.RowDuplicateInFile, msg: "an earlier row of the file has the same email"})
			return errChunkCondition
		})
	}
}

// putReportRow appends a report row; written again, it is the same item.
func (s *Store) putReportRow(t *txn, imp *licadmin.Import, f licadmin.ImportFailure) {
	t.put(s.Table, reportRowItem(imp, f), "", nil, nil)
}

func reportRowItem(imp *licadmin.Import, f licadmin.ImportFailure) Item {
	it := importRowKey(imp.ID, f.Line)
	it["line"] = num(f.Line)
	// A row's fields come from the file (up to a record's 64 KiB): cut,
	// so that a chunk of garbage rows stays within a transaction's 4 MB.
	it["email"] = str(licadmin.Clip(f.Email, licadmin.MaxReportEmailBytes))
	it["code"] = str(f.Code)
	it["message"] = str(licadmin.Clip(f.Message, licadmin.MaxReportMessageBytes))
	it["created"] = boolean(f.Created)
	it[attrTTL] = num(imp.CreatedAt.Add(ImportRetention).Unix())
	return it
}

func (s *Store) chunkResult(ch *licadmin.ImportChunk, created []*licadmin.User, failures []licadmin.ImportFailure, grant map[licadmin.Tier]int64) *licadmin.ImportChunkResult {
	imp := *ch.Import
	imp.Checkpoint.Seq++
	imp.Checkpoint.Offset, imp.Checkpoint.Line, imp.Checkpoint.Header = ch.Offset, ch.Line, ch.Header
	imp.LeaseUntil = ch.LeaseUntil
	imp.UpdatedAt = ch.Now
	imp.Rows += ch.Read
	imp.Created += int64(len(created))
	for _, f := range failures {
		if f.Created {
			imp.Unlicensed++
		} else {
			imp.Failed++
		}
	}
	if imp.DryRun {
		avail := map[licadmin.Tier]int64{}
		for _, t := range licadmin.Tiers {
			avail[t] = ch.Import.Checkpoint.Available[t] - grant[t]
		}
		imp.Checkpoint.Available = avail
	}
	return &licadmin.ImportChunkResult{Created: created, Failures: failures, Import: &imp}
}

// PutImportFailure writes one report row outside a chunk: the line where a
// file stopped being readable. Written again, it is the same item.
func (s *Store) PutImportFailure(ctx context.Context, imp *licadmin.Import, f licadmin.ImportFailure) error {
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Table, Item: reportRowItem(imp, f)})
	if err != nil {
		return fmt.Errorf("put report row of import %s: %w", imp.ID, err)
	}
	return nil
}

// LookupImportRows reads, in consistent BatchGetItems, the email claims of
// emails, the domain claims of domains and, in a dry run, the markers of
// earlier rows with the same emails.
func (s *Store) LookupImportRows(ctx context.Context, imp *licadmin.Import, emails, domains []string) (*licadmin.ImportLookup, error) {
	out := &licadmin.ImportLookup{Taken: map[string]string{}, Approved: map[string]bool{}, Seen: map[string]bool{}}
	// Each key read, by its pk and sk, and what its item answers.
	answer := map[string]func(Item){}
	var keys []key
	ask := func(k key, fn func(Item)) {
		keys = append(keys, k)
		answer[getS(k, attrPK)+"\x00"+getS(k, attrSK)] = fn
	}
	for _, em := range emails {
		ask(emailKey(em), func(it Item) { out.Taken[em] = getS(it, "importId") })
		if imp.DryRun {
			ask(importSeenKey(imp.ID, em), func(Item) { out.Seen[em] = true })
		}
	}
	for _, d := range domains {
		ask(domainKey(d), func(it Item) {
			out.Approved[d] = getS(it, "accountId") == imp.AccountID && getS(it, "status") == licadmin.DomainApproved
		})
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("look up rows of import %s: %w", imp.ID, err)
	}
	for _, it := range items {
		if fn := answer[getS(it, attrPK)+"\x00"+getS(it, attrSK)]; fn != nil {
			fn(it)
		}
	}
	return out, nil
}

// ImportReport calls fn with each report row of an import, in line order,
// reading one page at a time.
func (s *Store) ImportReport(ctx context.Context, importID string, fn func(licadmin.ImportFailure) error) error {
	e := newExpr()
	p := dynamodb.NewQueryPaginator(s.DB, &dynamodb.QueryInput{
		TableName: &s.Table,
		KeyConditionExpression: aws.String(fmt.Sprintf("%s = %s AND begins_with(%s, %s)",
			e.n(attrPK), e.v(str(importPK(importID))), e.n(attrSK), e.v(str(skImportRowPrefix)))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ConsistentRead:            aws.Bool(true),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query report of import %s: %w", importID, err)
		}
		for _, it := range out.Items {
			if err := fn(licadmin.ImportFailure{Line: getN(it, "line"), Email: getS(it, "email"), Code: getS(it, "code"),
				Message: getS(it, "message"), Created: getBool(it, "created")}); err != nil {
				return err
			}
		}
	}
	return nil
}
