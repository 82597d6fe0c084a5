package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// The outbox: a change that sends an email writes an outbox item in its own
// transaction, so that the email is sent if and only if the change
// committed. The table's stream delivers the item's INSERT to the stream
// processor (shared/notify), which claims it, sends it and marks it sent or
// failed with conditional updates, so that a record delivered twice sends
// one email.

// Outbox statuses.
const (
	OutboxPending = "pending"
	OutboxSending = "sending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// An outbox item waiting for delivery (pending, or claimed by a delivery
// that may have died) is also in a sparse part of GSI1 under outboxDuePK,
// sorted by when it is due for the sweeper: OutboxSweepGrace after its
// creation (the stream delivers it within seconds), then the retry time
// that each failed delivery sets. Sent and failed items leave the index,
// so the sweeper reads only what is left to do.
const outboxDuePK = "OUTBOX#DUE"

// OutboxSweepGrace is how long the sweeper leaves a new outbox item to the
// stream's delivery.
const OutboxSweepGrace = 5 * time.Minute

// dueSK is the GSI1 sort key of an outbox item due at t.
func dueSK(t time.Time, id string) string { return formatTime(t) + "#" + id }

// OutboxRetention is how long an outbox item is kept (its ttl): long enough
// to investigate a failure, short enough that the table does not grow.
const OutboxRetention = 30 * 24 * time.Hour

// maxErrorLength bounds the error text kept on an outbox item.
const maxErrorLength = 1000

// Outbox is one email to send, as the change that causes it describes it.
type Outbox struct {
	ID   string
	Kind licadmin.EmailKind
	// AccountID is the account the email is about.
	AccountID string
	// UserID, Email, FirstName and Language describe the recipient.
	UserID    string
	Email     string
	FirstName string
	Language  string
	// Tier is the license tier (assignment, low-pool alert).
	Tier licadmin.Tier
	// Available and Threshold are the pool figures of a low-pool alert.
	Available int64
	Threshold int64
	// Import is what an import-ended email tells; nil for other kinds.
	Import    *ImportNotice
	CreatedAt time.Time

	// Delivery state, kept by the stream processor.
	Status    string
	Attempts  int64
	LastError string
	MessageID string
}

func outboxItem(o *Outbox) Item {
	it := outboxKey(o.ID)
	it["id"] = str(o.ID)
	it["kind"] = str(string(o.Kind))
	it["accountId"] = str(o.AccountID)
	it["userId"] = str(o.UserID)
	it["email"] = str(o.Email)
	it["firstName"] = str(o.FirstName)
	it["language"] = str(o.Language)
	if o.Tier != "" {
		it["tier"] = str(string(o.Tier))
	}
	if o.Kind == licadmin.EmailLowPool {
		it["available"] = num(o.Available)
		it["threshold"] = num(o.Threshold)
	}
	if n := o.Import; n != nil {
		it["importId"] = str(n.ImportID)
		it["importStatus"] = str(n.Status)
		it["fileName"] = str(n.FileName)
		it["rows"] = num(n.Rows)
		it["created"] = num(n.Created)
		it["failed"] = num(n.Failed)
		it["unlicensed"] = num(n.Unlicensed)
	}
	it["status"] = str(OutboxPending)
	it["attempts"] = num(0)
	it["createdAt"] = timestamp(o.CreatedAt)
	it[attrGSI1PK] = str(outboxDuePK)
	it[attrGSI1SK] = str(dueSK(o.CreatedAt.Add(OutboxSweepGrace), o.ID))
	it[attrTTL] = num(o.CreatedAt.Add(OutboxRetention).Unix())
	return it
}

// OutboxFromImage decodes an outbox item (a stream record's image); it
// returns nil for any other item.
func OutboxFromImage(it Item) *Outbox {
	if it == nil || ItemKind(it) != KindOutbox {
		return nil
	}
	var notice *ImportNotice
	if getS(it, "importId") != "" {
		notice = &ImportNotice{ImportID: getS(it, "importId"), Status: getS(it, "importStatus"), FileName: getS(it, "fileName"),
			Rows: getN(it, "rows"), Created: getN(it, "created"), Failed: getN(it, "failed"), Unlicensed: getN(it, "unlicensed")}
	}
	return &Outbox{
		Import:    notice,
		ID:        getS(it, "id"),
		Kind:      licadmin.EmailKind(getS(it, "kind")),
		AccountID: getS(it, "accountId"),
		UserID:    getS(it, "userId"),
		Email:     getS(it, "email"),
		FirstName: getS(it, "firstName"),
		Language:  getS(it, "language"),
		Tier:      licadmin.Tier(getS(it, "tier")),
		Available: getN(it, "available"),
		Threshold: getN(it, "threshold"),
		CreatedAt: getTime(it, "createdAt"),
		Status:    getS(it, "status"),
		Attempts:  getN(it, "attempts"),
		LastError: getS(it, "lastError"),
		MessageID: getS(it, "messageId"),
	}
}

// ImportNotice is what an import-ended email says: which import, how it
// ended, and its counters (see licadmin.Import).
type ImportNotice struct {
	ImportID string
	// Status is done or failed.
	Status string
	// FileName is the dropped file's name.
	FileName                          string
	Rows, Created, Failed, Unlicensed int64
}

// putOutbox appends the outbox item of an email to send once t commits.
func (s *Store) putOutbox(t *txn, o *Outbox) {
	if o.ID == "" {
		o.ID = s.newID()
	}
	t.put(s.Table, outboxItem(o), "", nil, nil)
}

// RecipientOutbox describes an email of kind to user u about a change at
// now; the change's transaction, or a stream consumer reacting to it,
// puts it.
func RecipientOutbox(kind licadmin.EmailKind, u *licadmin.User, now time.Time) *Outbox {
	o := &Outbox{Kind: kind, AccountID: u.AccountID, UserID: u.ID, Email: u.Email, FirstName: u.FirstName, Language: u.Language, CreatedAt: now}
	if u.License != nil {
		o.Tier = u.License.Tier
	}
	return o
}

// PutOutboxOnce writes o unless an outbox item with its id exists, and
// reports whether it wrote it. Callers that may run twice for one event
// (a stream record delivered again) derive the id from the event.
func (s *Store) PutOutboxOnce(ctx context.Context, o *Outbox) (bool, error) {
	return s.putNew(ctx, outboxItem(o), "put outbox "+o.ID)
}

// GetOutbox returns the outbox item id, or nil when there is none.
func (s *Store) GetOutbox(ctx context.Context, id string) (*Outbox, error) {
	it, err := s.getItem(ctx, outboxKey(id))
	if err != nil {
		return nil, fmt.Errorf("get outbox %s: %w", id, err)
	}
	return OutboxFromImage(it), nil
}

// ErrOutboxDone means the outbox item was already sent or failed for good
// (or no longer exists): there is nothing left to deliver.
var ErrOutboxDone = errors.New("outbox item already delivered")

// ErrOutboxBusy means another delivery holds the outbox item's claim and
// its lease has not run out: retry later.
var ErrOutboxBusy = errors.New("outbox item is being delivered by another invocation")

// ClaimOutbox takes the outbox item id for one delivery attempt until
// leaseUntil, under the claim token claim, and returns it. It fails with
// ErrOutboxDone when the item is sent or failed, and ErrOutboxBusy when a
// live claim holds it.
func (s *Store) ClaimOutbox(ctx context.Context, id, claim string, now, leaseUntil time.Time) (*Outbox, error) {
	e := newExpr()
	status, lease := e.n("status"), e.n("leaseUntil")
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s", status, e.v(str(OutboxSending)), e.n("claim"), e.v(str(claim)), lease, e.v(num(leaseUntil.UnixMilli())))
	cond := fmt.Sprintf("%s = %s OR (%s = %s AND %s < %s)", status, e.v(str(OutboxPending)), status, e.v(str(OutboxSending)), lease, e.v(num(now.UnixMilli())))
	out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.Table,
		Key:                       outboxKey(id),
		UpdateExpression:          &update,
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, gerr := s.GetOutbox(ctx, id)
		switch {
		case gerr != nil:
			return nil, gerr
		case cur == nil, cur.Status == OutboxSent, cur.Status == OutboxFailed:
			return nil, ErrOutboxDone
		}
		return nil, ErrOutboxBusy
	}
	if err != nil {
		return nil, fmt.Errorf("claim outbox %s: %w", id, err)
	}
	return OutboxFromImage(out.Attributes), nil
}

// finishOutbox updates the item held under claim: set assigns attributes
// (in addition to status), and the claim is dropped; an item sent or
// failed leaves the sweeper's index.
func (s *Store) finishOutbox(ctx context.Context, id, claim, status string, set map[string]types.AttributeValue) error {
	e := newExpr()
	update := fmt.Sprintf("SET %s = %s", e.n("status"), e.v(str(status)))
	for name, v := range set {
		update += fmt.Sprintf(", %s = %s", e.n(name), e.v(v))
	}
	update += fmt.Sprintf(" REMOVE %s, %s", e.n("claim"), e.n("leaseUntil"))
	if status != OutboxPending {
		update += fmt.Sprintf(", %s, %s", e.n(attrGSI1PK), e.n(attrGSI1SK))
	}
	cond := fmt.Sprintf("%s = %s AND %s = %s", e.n("status"), e.v(str(OutboxSending)), e.n("claim"), e.v(str(claim)))
	lost := fmt.Errorf("outbox %s: the claim was lost before it was marked %s (lease too short?)", id, status)
	return s.updateIf(ctx, outboxKey(id), update, cond, e, lost, fmt.Sprintf("mark outbox %s %s", id, status))
}

// MarkOutboxSent records that the email of outbox item id was accepted by
// the mail service as messageID, after attempts send attempts.
func (s *Store) MarkOutboxSent(ctx context.Context, id, claim, messageID string, attempts int64, now time.Time) error {
	return s.finishOutbox(ctx, id, claim, OutboxSent, map[string]types.AttributeValue{
		"messageId": str(messageID), "sentAt": timestamp(now), "attempts": num(attempts),
	})
}

// MarkOutboxFailed records that the email of outbox item id can never be
// sent (the mail service refused it for good): it is not retried.
func (s *Store) MarkOutboxFailed(ctx context.Context, id, claim, reason string, attempts int64, now time.Time) error {
	return s.finishOutbox(ctx, id, claim, OutboxFailed, map[string]types.AttributeValue{
		"lastError": str(truncate(reason)), "failedAt": timestamp(now), "attempts": num(attempts),
	})
}

// ReleaseOutbox gives the claim back after a failure worth retrying
// (throttling, an outage): the item is pending again, with the error seen,
// and due for the sweeper at retryAt.
func (s *Store) ReleaseOutbox(ctx context.Context, id, claim, reason string, attempts int64, retryAt time.Time) error {
	return s.finishOutbox(ctx, id, claim, OutboxPending, map[string]types.AttributeValue{
		"lastError": str(truncate(reason)), "attempts": num(attempts), attrGSI1SK: str(dueSK(retryAt, id)),
	})
}

// DueOutbox returns up to limit outbox items due for delivery at now, the
// longest due first: pending (new ones once OutboxSweepGrace is over,
// released ones at their retry time) or claimed by a delivery whose lease
// may have run out.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]*Outbox, error) {
	e := newExpr()
	out, err := s.DB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.Table,
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String(fmt.Sprintf("%s = %s AND %s <= %s", e.n(attrGSI1PK), e.v(str(outboxDuePK)), e.n(attrGSI1SK), e.v(str(dueSK(now, "~"))))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		Limit:                     aws.Int32(int32(limit)),
	})
	if err != nil {
		return nil, fmt.Errorf("query due outbox items: %w", err)
	}
	items := make([]*Outbox, 0, len(out.Items))
	for _, it := range out.Items {
		if o := OutboxFromImage(it); o != nil {
			items = append(items, o)
		}
	}
	return items, nil
}

func truncate(s string) string {
	if len(s) > maxErrorLength {
		return s[:maxErrorLength]
	}
	return s
}

// AccountAdmins returns the admins of an account (the recipients of
// account-wide emails such as low-pool alerts).
func (s *Store) AccountAdmins(ctx context.Context, accountID string) ([]*licadmin.User, error) {
	e := newExpr()
	in := s.queryIndex(e, usersGSI1PK(accountID))
	in.FilterExpression = aws.String(fmt.Sprintf("%s = %s", e.n("role"), e.v(str(string(licadmin.RoleAdmin)))))
	var admins []*licadmin.User
	for {
		out, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query admins of %s: %w", accountID, err)
		}
		for _, it := range out.Items {
			if u := decodeUser(it); u != nil {
				admins = append(admins, u)
			}
		}
		if out.LastEvaluatedKey == nil {
			return admins, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// PoolFromImage decodes a pool item (a stream record's image) and returns
// its account; ok is false for any other item.
func PoolFromImage(it Item) (accountID string, pool *licadmin.Pool, ok bool) {
	if it == nil || ItemKind(it) != KindPool {
		return "", nil, false
	}
	return accountOfPK(getS(it, attrPK)), decodePool(it), true
}
