package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"licenseadmin/shared/licadmin"
)

// ActionLogsExport is the audit action of a log export request.
const ActionLogsExport = "logs.export"

// ExportTTL is how long an export record is kept; its file is kept one day
// (the bucket's lifecycle rule) and handed out only while the user's log
// generation is the one exported.
const ExportTTL = 7 * 24 * time.Hour

// CreateExport records a running export requested by c, with its audit
// record (and the request's idempotency record, sealed with response) in
// one transaction, on the condition that c is still an admin or, for an
// export of c's own journal (x.Own), still c's user of the account.
func (s *Store) CreateExport(ctx context.Context, c *licadmin.Caller, x *licadmin.Export, response any, now time.Time) error {
	t, p := s.begin(ctx, now)
	it := exportKey(x.ID)
	it["exportId"] = str(x.ID)
	it["accountId"] = str(x.AccountID)
	it["userId"] = str(x.UserID)
	it["logGen"] = num(x.LogGeneration)
	it["from"] = timestamp(x.Range.From)
	it["to"] = timestamp(x.Range.To)
	if x.Range.Type != "" {
		it["type"] = str(string(x.Range.Type))
	}
	it["status"] = str(string(x.Status))
	it["objectKey"] = str(x.Key)
	it["createdBy"] = str(x.CreatedBy)
	it["createdById"] = str(x.CreatedByID)
	it["own"] = boolean(x.Own)
	it["createdAt"] = timestamp(x.CreatedAt)
	it["updatedAt"] = timestamp(x.CreatedAt)
	it[attrTTL] = num(now.Add(ExportTTL).Unix())
	t.putNew(s.Table, it, func(Item) error {
		return fmt.Errorf("export id %s collides with an existing export", x.ID)
	})
	if x.Own {
		s.memberCheck(t, c)
	} else {
		s.callerCheck(t, c)
	}
	s.addAudit(ctx, t, Audit{AccountID: x.AccountID, Actor: c.Email, Action: ActionLogsExport, Target: x.UserID,
		Details: map[string]string{
			"exportId": x.ID, "from": formatTime(x.Range.From), "to": formatTime(x.Range.To),
			"type": string(x.Range.Type), "logGeneration": strconv.FormatInt(x.LogGeneration, 10),
		}, At: now})
	return s.commit(ctx, t, p, response, now)
}

// GetExport returns an export record, or nil when there is none.
func (s *Store) GetExport(ctx context.Context, exportID string) (*licadmin.Export, error) {
	it, err := s.getItem(ctx, exportKey(exportID))
	if err != nil {
		return nil, fmt.Errorf("get export %s: %w", exportID, err)
	}
	if it == nil {
		return nil, nil
	}
	return &licadmin.Export{
		ID:            getS(it, "exportId"),
		AccountID:     getS(it, "accountId"),
		UserID:        getS(it, "userId"),
		LogGeneration: getN(it, "logGen"),
		Range: licadmin.LogRange{
			From: getTime(it, "from"),
			To:   getTime(it, "to"),
			Type: licadmin.EventType(getS(it, "type")),
		},
		Status:      licadmin.ExportStatus(getS(it, "status")),
		Key:         getS(it, "objectKey"),
		Rows:        getN(it, "rows"),
		Error:       getS(it, "error"),
		CreatedBy:   getS(it, "createdBy"),
		CreatedByID: getS(it, "createdById"),
		Own:         getBool(it, "own"),
		CreatedAt:   getTime(it, "createdAt"),
		UpdatedAt:   getTime(it, "updatedAt"),
	}, nil
}

// FinishExport moves a running export to done (with its row count) or
// failed (with a reason safe to show). It returns false, changing nothing,
// when the export is not running any more: a redelivered job finds the
// first outcome in place.
func (s *Store) FinishExport(ctx context.Context, exportID string, status licadmin.ExportStatus, rows int64, reason string, now time.Time) (bool, error) {
	e := newExpr()
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s",
		e.n("status"), e.v(str(string(status))), e.n("rows"), e.v(num(rows)),
		e.n("error"), e.v(str(reason)), e.n("updatedAt"), e.v(timestamp(now)))
	cond := fmt.Sprintf("%s = %s", e.n("status"), e.v(str(string(licadmin.ExportRunning))))
	err := s.updateIf(ctx, exportKey(exportID), update, cond, e, errExportNotRunning, "finish export "+exportID)
	if errors.Is(err, errExportNotRunning) {
		return false, nil
	}
	return err == nil, err
}

// errExportNotRunning tells FinishExport the export had an outcome already.
var errExportNotRunning = errors.New("export not running")
