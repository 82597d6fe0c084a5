package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// EventClaimTTL is how long an ingested event's id is remembered, so that a
// redelivery counts once: longer than SQS keeps a message (14 days at most)
// and than the messaging service retries.
const EventClaimTTL = 30 * 24 * time.Hour

// FindUser returns a user by id when userID is not empty and by email
// otherwise (a usage event names its user either way), read consistently;
// nil when there is none. Callers check the account.
func (s *Store) FindUser(ctx context.Context, userID, email string) (*licadmin.User, error) {
	if userID == "" {
		claim, err := s.getItem(ctx, emailKey(email))
		if err != nil {
			return nil, fmt.Errorf("get email claim: %w", err)
		}
		if userID = getS(claim, "userId"); userID == "" {
			return nil, nil
		}
	}
	it, err := s.getItem(ctx, userKey(userID))
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", userID, err)
	}
	return decodeUser(it), nil
}

// RecordUsage writes a usage event of u (as read) in one transaction: the
// event's claim (so that it counts once), its log entry in u's current log
// generation with a TTL from u's license tier, and the increment of u's
// counters for the event's month, on the condition that u is still in the
// event's account with the log generation read.
//
// It returns licadmin.ErrDuplicateEvent when the event was already recorded,
// ENOTFOUND when the user no longer exists (or is of another account), and
// licadmin.ErrStale when its log generation changed since it was read (a
// license was removed or transferred meanwhile): the caller reads the user
// again and writes into the new generation.
func (s *Store) RecordUsage(ctx context.Context, ev *licadmin.UsageEvent, u *licadmin.User, now time.Time) error {
	t := &txn{}

	claim := eventKey(ev.AccountID, ev.ID)
	claim["userId"] = str(u.ID)
	claim["at"] = timestamp(ev.At)
	claim[attrTTL] = num(now.Add(EventClaimTTL).Unix())
	ce := newExpr()
	t.put(s.Table, claim, fmt.Sprintf("attribute_not_exists(%s)", ce.n(attrPK)), ce,
		func(Item) error { return licadmin.ErrDuplicateEvent })

	ue := newExpr()
	genCond := fmt.Sprintf("%s = %s", ue.n("logGen"), ue.v(num(u.LogGeneration)))
	if u.LogGeneration == 0 {
		genCond = fmt.Sprintf("(attribute_not_exists(%s) OR %s)", ue.n("logGen"), genCond)
	}
	t.check(s.Table, userKey(u.ID), fmt.Sprintf("%s = %s AND %s", ue.n("accountId"), ue.v(str(ev.AccountID)), genCond), ue,
		func(old Item) error {
			if old == nil || getS(old, "accountId") != ev.AccountID {
				return licadmin.Errorf(licadmin.ENOTFOUND, "user %s not found", u.ID)
			}
			return licadmin.ErrStale
		})

	entry := mkKey(logPK(u.ID, u.LogGeneration), logSK(ev.At, ev.ID))
	entry["eventId"] = str(ev.ID)
	entry["accountId"] = str(ev.AccountID)
	entry["userId"] = str(u.ID)
	entry["type"] = str(string(ev.Type))
	entry["at"] = timestamp(ev.At)
	entry["messageRef"] = str(ev.MessageRef)
	recipients := make([]types.AttributeValue, len(ev.Recipients))
	for i, r := range ev.Recipients {
		recipients[i] = str(r)
	}
	entry["recipients"] = &types.AttributeValueMemberL{Value: recipients}
	entry["bytes"] = num(ev.Bytes)
	entry["ip"] = str(ev.IP)
	entry[attrTTL] = num(ev.At.Add(licadmin.Retention(u.License)).Unix())
	t.put(s.Table, entry, "", nil, nil)

	month := ev.At.UTC().Format(licadmin.MonthLayout)
	se := newExpr()
	one := se.v(num(1))
	add := fmt.Sprintf("%s %s", se.n(counterAttr(ev.Type)), one)
	if ev.Type == licadmin.EventSent {
		add += fmt.Sprintf(", %s %s", se.n("bytesSent"), se.v(num(ev.Bytes)))
	}
	monthStart, _ := time.Parse(licadmin.MonthLayout, month)
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s ADD %s",
		se.n("accountId"), se.v(str(ev.AccountID)),
		se.n("userId"), se.v(str(u.ID)),
		se.n("month"), se.v(str(month)),
		se.n(attrTTL), se.v(num(monthStart.AddDate(0, 1, 0).Add(licadmin.MaxRetention).Unix())),
		add)
	t.update(s.Table, statsKey(u.ID, month), update, "", se, nil)

	return s.transact(ctx, t)
}

// counterAttr is the monthly counter an event type increments.
func counterAttr(t licadmin.EventType) string {
	switch t {
	case licadmin.EventSent:
		return "sent"
	case licadmin.EventOpened:
		return "opens"
	case licadmin.EventDownloaded:
		return "downloads"
	case licadmin.EventSigned:
		return "signed"
	}
	panic("store: unknown event type " + string(t))
}

// decodeCounters reads the counters of a monthly usage item.
func decodeCounters(it Item) licadmin.Counters {
	return licadmin.Counters{
		Sent:      getN(it, "sent"),
		BytesSent: getN(it, "bytesSent"),
		Opens:     getN(it, "opens"),
		Downloads: getN(it, "downloads"),
		Signed:    getN(it, "signed"),
	}
}
