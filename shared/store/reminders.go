package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"licenseadmin/shared/licadmin"
)

// Bulk reminders (POST /v1/activation-emails). A reminder record
// (ACCT#<accountId>, REMIND#<reminderId>) holds the request and its
// progress. Users are reminded up to RemindGroup per transaction, each
// under its own conditions as a single activation-email request is
// (RemindUsers); a reminder of every pending
// user goes through the account's users a page at a time, and writes each
// page's progress on the condition that no other invocation wrote it
// first (AdvanceReminder).

// ActionActivationReminders is the audit action of a bulk reminder
// request; each email it queues is audited as ActionActivationEmail.
const ActionActivationReminders = "user.activation_reminders"

// ReminderRetention is how long a reminder record is kept.
const ReminderRetention = 30 * 24 * time.Hour

func reminderKey(accountID, id string) key { return mkKey(accountPK(accountID), "REMIND#"+id) }

// CreateReminder records r, asked by c, with its audit record and (when
// the request has an Idempotency-Key) response to replay, on the
// condition that c is still an admin.
func (s *Store) CreateReminder(ctx context.Context, c *licadmin.Caller, r *licadmin.Reminder, response any, now time.Time) error {
	t, p := s.begin(ctx, now)
	it := reminderKey(r.AccountID, r.ID)
	it["reminderId"] = str(r.ID)
	it["accountId"] = str(r.AccountID)
	it["status"] = str(string(r.Status))
	it["allPending"] = boolean(r.AllPending)
	it["actor"] = str(r.Actor)
	it["queued"] = num(r.Queued)
	it["skipped"] = num(r.Skipped)
	it["seq"] = num(0)
	it["createdAt"] = timestamp(r.CreatedAt)
	it["updatedAt"] = timestamp(r.UpdatedAt)
	it[attrTTL] = num(r.CreatedAt.Add(ReminderRetention).Unix())
	t.putNew(s.Table, it, func(Item) error {
		return fmt.Errorf("reminder id %s collides with an existing one", r.ID)
	})
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: r.AccountID, Actor: c.Email, Action: ActionActivationReminders, Target: r.ID,
		Details: map[string]string{"allPending": strconv.FormatBool(r.AllPending), "queued": strconv.FormatInt(r.Queued, 10),
			"skipped": strconv.FormatInt(r.Skipped, 10)}, At: now})
	return s.commit(ctx, t, p, response, now)
}

// GetReminder returns a reminder of accountID. It fails with ENOTFOUND
// when the account has none by that id, whichever account has one.
func (s *Store) GetReminder(ctx context.Context, accountID, id string) (*licadmin.Reminder, error) {
	it, err := s.getItem(ctx, reminderKey(accountID, id))
	if err != nil {
		return nil, fmt.Errorf("get reminder %s: %w", id, err)
	}
	if it == nil {
		return nil, licadmin.Errorf(licadmin.ENOTFOUND, "reminder %s not found", id)
	}
	r := &licadmin.Reminder{
		ID: getS(it, "reminderId"), Status: licadmin.ReminderStatus(getS(it, "status")), AllPending: getBool(it, "allPending"),
		Queued: getN(it, "queued"), Skipped: getN(it, "skipped"), CreatedAt: getTime(it, "createdAt"), UpdatedAt: getTime(it, "updatedAt"),
		AccountID: getS(it, "accountId"), Actor: getS(it, "actor"), Seq: getN(it, "seq"), Cursor: getB(it, "cursor"),
	}
	if msg := getS(it, "error"); msg != "" {
		r.Error = &msg
	}
	return r, nil
}

// PendingUsers returns the pending users of accountID among the next page
// of its users (at most limit read) after the position after, and the
// position of the next page (nil once every user was read).
func (s *Store) PendingUsers(ctx context.Context, accountID string, limit int, after []byte) ([]*licadmin.User, []byte, error) {
	from, err := decodePosition(after, usersGSI1PK(accountID))
	if err != nil {
		return nil, nil, err
	}
	e := newExpr()
	in := s.queryIndex(e, usersGSI1PK(accountID))
	in.FilterExpression = aws.String(fmt.Sprintf("%s = %s", e.n("status"), e.v(str(string(licadmin.StatusPending)))))
	in.ExclusiveStartKey = from
	in.Limit = aws.Int32(int32(limit))
	out, err := s.DB.Query(ctx, in)
	if err != nil {
		return nil, nil, fmt.Errorf("query pending users of %s: %w", accountID, err)
	}
	users := make([]*licadmin.User, 0, len(out.Items))
	for _, it := range out.Items {
		users = append(users, decodeUser(it))
	}
	if out.LastEvaluatedKey == nil {
		return users, nil, nil
	}
	return users, encodePosition(out.LastEvaluatedKey), nil
}

// AdvanceReminder adds a page's counts to r (as read) and moves it to the
// position next, or ends it with status (done, or failed with reason), on
// the condition that it is still running at r.Seq. It fails with
// licadmin.ErrReminderMoved when another invocation advanced it first.
func (s *Store) AdvanceReminder(ctx context.Context, r *licadmin.Reminder, queued, skipped int64, next []byte, status licadmin.ReminderStatus, reason string, now time.Time) error {
	e := newExpr()
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s ADD %s %s, %s %s",
		e.n("seq"), e.v(num(r.Seq+1)), e.n("status"), e.v(str(string(status))), e.n("updatedAt"), e.v(timestamp(now)),
		e.n("queued"), e.v(num(queued)), e.n("skipped"), e.v(num(skipped)))
	if next != nil {
		update = fmt.Sprintf("SET %s = %s, ", e.n("cursor"), e.v(bin(next))) + update[len("SET "):]
	}
	if reason != "" {
		update = fmt.Sprintf("SET %s = %s, ", e.n("error"), e.v(str(reason))) + update[len("SET "):]
	}
	cond := fmt.Sprintf("%s = %s AND %s = %s", e.n("seq"), e.v(num(r.Seq)),
		e.n("status"), e.v(str(string(licadmin.ReminderRunning))))
	return s.updateIf(ctx, reminderKey(r.AccountID, r.ID), update, cond, e,
		licadmin.ErrReminderMoved, "advance reminder "+r.ID)
}

// RemindUsers queues an activation email to each of users (as read) for
// reminder reminderID asked by c, several users per transaction (at most
// RemindGroup): for each user, its activationSentAt and remindedBy, on
// the conditions that it is still a pending user of the account, sent
// none in the last ActivationEmailInterval and was not reminded by this
// reminder yet, its outbox item and its audit record; and once per
// transaction the caller's admin check. Each user's items commit with
// its own condition, as a single activation-email request's do: when a
// user's condition fails, DynamoDB cancels the whole transaction, and it
// is sent again without that user (and any other the cancellation
// named), so a user is never reminded without its email, nor its email
// queued without its condition. It reports for each user whether its
// email was queued, by this call or an earlier one for the same reminder
// (a page done again); false means the user is skipped. It fails with
// EFORBIDDEN when c is no longer an admin; users of groups sent before
// the failure keep their emails.
func (s *Store) RemindUsers(ctx context.Context, c *licadmin.Caller, users []*licadmin.User, reminderID string, now time.Time) ([]bool, error) {
	queued := make([]bool, len(users))
	for from := 0; from < len(users); from += RemindGroup {
		group := users[from:min(len(users), from+RemindGroup)]
		if err := s.remindGroup(ctx, c, group, reminderID, now, queued[from:from+len(group)]); err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// RemindGroup is how many users one transaction of RemindUsers reminds:
// three items each and the caller's check, within DynamoDB's 100 items.
const RemindGroup = 25

// errSkipped is the error of a user's failed condition in RemindUsers.
var errSkipped = errors.New("user skipped")

// remindGroup reminds group in one transaction, sent again without the
// users whose conditions failed until it commits or none is left; it sets
// queued[i] for group[i].
func (s *Store) remindGroup(ctx context.Context, c *licadmin.Caller, group []*licadmin.User, reminderID string, now time.Time, queued []bool) error {
	left := make([]int, len(group))
	for i := range group {
		left[i] = i
	}
	for len(left) > 0 {
		t := &txn{}
		// outcome[j] is how left[j]'s condition failed: 0 it held, 1 the
		// user is skipped, 2 this reminder already reminded it.
		outcome := make([]int, len(left))
		s.callerCheck(t, c)
		for j, i := range left {
			u := group[i]
			e := newExpr()
			sent, by := e.n("activationSentAt"), e.n("remindedBy")
			job := e.v(str(reminderID))
			t.update(s.Table, userKey(u.ID), fmt.Sprintf("SET %s = %s, %s = %s", sent, e.v(num(now.UnixMilli())), by, job),
				fmt.Sprintf("%s = %s AND %s = %s AND (attribute_not_exists(%s) OR %s <= %s) AND (attribute_not_exists(%s) OR %s <> %s)",
					e.n("accountId"), e.v(str(u.AccountID)), e.n("status"), e.v(str(string(licadmin.StatusPending))),
					sent, sent, e.v(num(now.Add(-ActivationEmailInterval).UnixMilli())), by, by, job),
				e, func(old Item) error {
					outcome[j] = 1
					if getS(old, "remindedBy") == reminderID {
						outcome[j] = 2
					}
					return errSkipped
				})
			s.putOutbox(t, RecipientOutbox(licadmin.EmailActivation, u, now))
			s.addAudit(ctx, t, Audit{AccountID: u.AccountID, Actor: c.Email, Action: ActionActivationEmail, Target: u.ID,
				Details: map[string]string{"reminderId": reminderID}, At: now})
		}
		err := s.transact(ctx, t)
		if err != nil && !errors.Is(err, errSkipped) {
			return err
		}
		var again []int
		for j, i := range left {
			switch outcome[j] {
			case 0:
				if err == nil {
					queued[i] = true
				} else {
					again = append(again, i)
				}
			case 2:
				queued[i] = true
			}
		}
		if err != nil && len(again) == len(left) {
			return fmt.Errorf("remind users: the transaction was cancelled without naming a user: %w", err)
		}
		left = again
	}
	return nil
}
