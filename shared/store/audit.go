package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
)

// Audit is one audit record: who did what to which target, when, from where
// and in which request (docs/api.md, rule 8). It is always written in the same
// transaction as the change it describes.
type Audit struct {
	AccountID string
	Actor     string
	Action    string
	Target    string
	Details   map[string]string
	// Subjects are the targets of a record that changes many at once, with
	// the details of each: an import chunk's users (ActionUsersImport).
	Subjects  []map[string]string
	At        time.Time
	SourceIP  string
	RequestID string
}

// Audit actions, one per kind of change.
const (
	ActionAccountCreate   = "account.create"
	ActionLicensesAdd     = "licenses.add"
	ActionLicensesDelete  = "licenses.delete"
	ActionLicenseAssign   = "license.assign"
	ActionLicenseModify   = "license.modify"
	ActionLicenseRemove   = "license.remove"
	ActionLicenseTransfer = "license.transfer"
	ActionUserCreate      = "user.create"
	// ActionUsersImport is one chunk of an import: its target is the
	// import, its subjects the users the chunk created (id, email, line,
	// tier). One record per chunk rather than one per user keeps an import
	// at two items per row, a third fewer writes.
	ActionUsersImport = "users.import"
)

// addAudit appends the audit record of the change to t. The request's id
// and source IP come from ctx.
func (s *Store) addAudit(ctx context.Context, t *txn, a Audit) {
	r := licadmin.RequestFrom(ctx)
	if a.SourceIP == "" {
		a.SourceIP = r.SourceIP
	}
	if a.RequestID == "" {
		a.RequestID = r.RequestID
	}
	at := formatTime(a.At)
	it := auditKey(a.AccountID, at, s.newID())
	it["actor"] = str(a.Actor)
	it["action"] = str(a.Action)
	it["target"] = str(a.Target)
	it["at"] = str(at)
	it["sourceIp"] = str(a.SourceIP)
	it["requestId"] = str(a.RequestID)
	if len(a.Details) > 0 {
		it["details"] = strMap(a.Details)
	}
	if len(a.Subjects) > 0 {
		l := make([]types.AttributeValue, len(a.Subjects))
		for i, sub := range a.Subjects {
			l[i] = strMap(sub)
		}
		it["subjects"] = &types.AttributeValueMemberL{Value: l}
	}
	t.put(s.Table, it, "", nil, nil)
}

// AuditLog returns an account's audit records, newest first, at most limit.
func (s *Store) AuditLog(ctx context.Context, accountID string, limit int32) ([]Audit, error) {
	e := newExpr()
	out, err := s.DB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.Table,
		KeyConditionExpression:    aws.String(fmt.Sprintf("%s = %s AND begins_with(%s, %s)", e.n(attrPK), e.v(str(accountPK(accountID))), e.n(attrSK), e.v(str(skAuditPrefix)))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(limit),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("query audit of %s: %w", accountID, err)
	}
	var recs []Audit
	for _, it := range out.Items {
		recs = append(recs, *decodeAudit(accountID, it))
	}
	return recs, nil
}

func decodeAudit(accountID string, it Item) *Audit {
	a := &Audit{
		AccountID: accountID,
		Actor:     getS(it, "actor"),
		Action:    getS(it, "action"),
		Target:    getS(it, "target"),
		At:        getTime(it, "at"),
		SourceIP:  getS(it, "sourceIp"),
		RequestID: getS(it, "requestId"),
	}
	a.Details = strMapValue(it["details"])
	if l, ok := it["subjects"].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			a.Subjects = append(a.Subjects, strMapValue(v))
		}
	}
	return a
}

// AuditFromImage decodes an audit record from a stream image; it returns
// nil for any other item. Stream consumers react to some records: an
// import chunk's (ActionUsersImport) queues the confirmation emails of the
// licenses it gave.
func AuditFromImage(it Item) *Audit {
	if it == nil || ItemKind(it) != KindAudit {
		return nil
	}
	return decodeAudit(strings.TrimPrefix(getS(it, attrPK), accountPK("")), it)
}

// callerCheck appends a condition that the caller is still an admin of its
// account when the transaction commits, so that a demotion racing with a
// request can never let a former admin change anything.
func (s *Store) callerCheck(t *txn, c *licadmin.Caller) {
	e := newExpr()
	cond := fmt.Sprintf("%s = %s AND %s = %s", e.n("accountId"), e.v(str(c.AccountID)), e.n("role"), e.v(str(string(licadmin.RoleAdmin))))
	t.check(s.Table, emailKey(c.Email), cond, e, func(Item) error {
		return licadmin.Errorf(licadmin.EFORBIDDEN, "only administrators of the account may do this")
	})
}

// memberCheck appends a condition that the caller is still the same user
// of its account when the transaction commits (any role): what a user's
// request about itself needs, so that a deleted user, or an email given
// to someone else since, can change nothing.
func (s *Store) memberCheck(t *txn, c *licadmin.Caller) {
	e := newExpr()
	cond := fmt.Sprintf("%s = %s AND %s = %s", e.n("accountId"), e.v(str(c.AccountID)), e.n("userId"), e.v(str(c.UserID)))
	t.check(s.Table, emailKey(c.Email), cond, e, func(Item) error {
		return licadmin.Errorf(licadmin.EFORBIDDEN, "no user of any account has this token's email")
	})
}

func idemItem(r *idem.Record) Item {
	it := idemKey(r.Scope, r.Key)
	it["hash"] = str(r.Hash)
	it["status"] = num(int64(r.Status))
	it["contentType"] = str(r.ContentType)
	it["body"] = bin(r.Body)
	if len(r.Headers) > 0 {
		it["headers"] = strMap(r.Headers)
	}
	it["createdAt"] = timestamp(r.CreatedAt)
	it[attrTTL] = num(r.Expires().Unix())
	return it
}

// GetIdempotency returns the remembered response for (scope, key), or nil
// when there is none or it expired at now (TTL deletion lags by up to two
// days).
func (s *Store) GetIdempotency(ctx context.Context, scope, k string, now time.Time) (*idem.Record, error) {
	it, err := s.getItem(ctx, idemKey(scope, k))
	if err != nil {
		return nil, fmt.Errorf("get idempotency record: %w", err)
	}
	if it == nil {
		return nil, nil
	}
	r := &idem.Record{
		Scope:       scope,
		Key:         k,
		Hash:        getS(it, "hash"),
		Status:      int(getN(it, "status")),
		ContentType: getS(it, "contentType"),
		Body:        getB(it, "body"),
		CreatedAt:   getTime(it, "createdAt"),
	}
	r.Headers = strMapValue(it["headers"])
	if now.After(r.Expires()) {
		return nil, nil
	}
	return r, nil
}

// PutIdempotency remembers a response that no transaction recorded (an
// error, a no-op). It returns idem.ErrReplay when a record live at now
// exists.
func (s *Store) PutIdempotency(ctx context.Context, r *idem.Record, now time.Time) error {
	e := newExpr()
	cond := fmt.Sprintf("attribute_not_exists(%s) OR %s < %s", e.n(attrPK), e.n(attrTTL), e.v(num(now.Unix())))
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.Table,
		Item:                      idemItem(r),
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return idem.ErrReplay
	}
	if err != nil {
		return fmt.Errorf("put idempotency record: %w", err)
	}
	return nil
}
