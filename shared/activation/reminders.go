package activation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// Bulk reminders (POST /v1/activation-emails): a fresh activation link to
// each pending user of a list, or of the whole account, each user under
// the 60-second rule of single requests. A list (at most MaxReminderUsers)
// is reminded within the request. Every pending user of an account
// (100,000 included) is reminded in the background: the request records
// the reminder and puts a job on the reminder queue; the reminder function
// goes through the account's users a page at a time, writes each page's
// progress, and before its time runs out puts the job back on the queue
// for a fresh invocation to go on. GET /v1/activation-emails/{reminderId}
// shows the progress.

// Limits and settings of bulk reminders.
const (
	// MaxReminderUsers is the most user ids a request may list.
	MaxReminderUsers = 100
	// ReminderPage is how many users of the account a page reads.
	ReminderPage = 200
	// reminderWorkers is how many groups of a page (store.RemindGroup
	// users, one transaction) are reminded at once.
	reminderWorkers = 8
	// DefaultReminderMargin is how long before the invocation's deadline
	// the reminder function stops taking pages and continues in a fresh
	// invocation.
	DefaultReminderMargin = 60 * time.Second
)

// ReminderStore is what bulk reminders need from storage.
type ReminderStore interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	CreateReminder(ctx context.Context, c *licadmin.Caller, r *licadmin.Reminder, response any, now time.Time) error
	GetReminder(ctx context.Context, accountID, id string) (*licadmin.Reminder, error)
	RemindUsers(ctx context.Context, c *licadmin.Caller, users []*licadmin.User, reminderID string, now time.Time) ([]bool, error)
	PendingUsers(ctx context.Context, accountID string, limit int, after []byte) ([]*licadmin.User, []byte, error)
	AdvanceReminder(ctx context.Context, r *licadmin.Reminder, queued, skipped int64, next []byte, status licadmin.ReminderStatus, reason string, now time.Time) error
}

// Queue sends reminder jobs to the reminder function (SQS in AWS).
type Queue interface {
	Send(ctx context.Context, body []byte) error
}

// Reminders applies the bulk reminder rules and runs reminder jobs.
type Reminders struct {
	Store  ReminderStore
	Queue  Queue
	Now    licadmin.Clock
	NewID  licadmin.IDSource
	Logger *slog.Logger
	// Page is how many users a page reads (ReminderPage when zero).
	Page int
	// Margin is kept free before the invocation's deadline
	// (DefaultReminderMargin when zero).
	Margin time.Duration
	// MaxRunTime, when not zero, also ends an invocation this long after
	// it started (each does at least one page): tests force continuations
	// with it.
	MaxRunTime time.Duration
}

// ReminderInput is the body of POST /v1/activation-emails: userIds, or
// allPending true, not both.
type ReminderInput struct {
	UserIDs    []string `json:"userIds"`
	AllPending bool     `json:"allPending"`
}

// reminderJob is the body of a reminder queue message.
type reminderJob struct {
	AccountID  string `json:"accountId"`
	ReminderID string `json:"reminderId"`
}

// Request reminds the users in asks for, for the caller's account: the
// listed ones at once (unknown ids, ids of other accounts, users not
// pending or sent a link less than 60 seconds ago are skipped), or every
// pending user in the background. It returns the reminder as recorded.
// Admins only; EINVALID for a body with neither or both, or too many ids.
func (x *Reminders) Request(ctx context.Context, r licadmin.Request, in ReminderInput) (*licadmin.Reminder, error) {
	switch {
	case in.AllPending && len(in.UserIDs) > 0:
		return nil, licadmin.Invalid("userIds", "conflict", "give userIds or allPending, not both")
	case !in.AllPending && len(in.UserIDs) == 0:
		return nil, licadmin.Invalid("userIds", "required", "give userIds (1 to 100 user ids) or allPending: true")
	case len(in.UserIDs) > MaxReminderUsers:
		return nil, licadmin.Invalid("userIds", "too_many", fmt.Sprintf("at most %d user ids; use allPending for more", MaxReminderUsers))
	}
	seen := map[string]bool{}
	var ids []string
	for _, id := range in.UserIDs {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	c, users, err := x.Store.LoadCaller(ctx, r.Email, ids...)
	if err != nil {
		return nil, err
	}
	if err := licadmin.RequireAdmin(c); err != nil {
		return nil, err
	}
	now := x.Now.Read()
	// The listed users are reminded before the reminder (and the
	// request's idempotency record) is written: a retry of a request that
	// failed in between reuses the id, and RemindUsers counts the users it
	// already reminded as queued instead of sending them another link.
	rem := &licadmin.Reminder{ID: idem.StableID(ctx, now, x.NewID), Status: licadmin.ReminderDone, AllPending: in.AllPending,
		AccountID: c.AccountID, Actor: c.Email, CreatedAt: now, UpdatedAt: now}
	if in.AllPending {
		rem.Status = licadmin.ReminderRunning
	} else {
		var mine []*licadmin.User
		for _, u := range users {
			if u != nil && u.AccountID == c.AccountID {
				mine = append(mine, u)
			}
		}
		queued, err := x.remind(ctx, c, rem.ID, mine)
		if err != nil {
			return nil, err
		}
		rem.Queued, rem.Skipped = queued, int64(len(ids))-queued
	}
	if err := x.Store.CreateReminder(ctx, c, rem, rem, now); err != nil {
		return nil, err
	}
	if in.AllPending {
		body, _ := json.Marshal(reminderJob{AccountID: rem.AccountID, ReminderID: rem.ID})
		if err := x.send(ctx, body); err != nil {
			// The reminder exists (and a retry with the same
			// Idempotency-Key replays this answer): it shows as failed,
			// never as running forever.
			x.logger().ErrorContext(ctx, "reminder job not queued", "reminderId", rem.ID, "err", err.Error())
			if aerr := x.Store.AdvanceReminder(ctx, rem, 0, 0, nil, licadmin.ReminderFailed, "the reminder could not be started; request it again", x.Now.Read()); aerr != nil {
				x.logger().ErrorContext(ctx, "reminder not marked failed", "reminderId", rem.ID, "err", aerr.Error())
			}
		}
	}
	return rem, nil
}

func (x *Reminders) send(ctx context.Context, body []byte) error {
	if x.Queue == nil {
		return errors.New("reminders: no reminder queue is configured (REMINDER_QUEUE_URL)")
	}
	return x.Queue.Send(ctx, body)
}

// Get returns a reminder of the caller's account, with its progress.
// Admins only; ENOTFOUND for unknown ids and ids of other accounts alike.
func (x *Reminders) Get(ctx context.Context, r licadmin.Request, id string) (*licadmin.Reminder, error) {
	c, err := licadmin.Admin(ctx, x.Store, r.Email)
	if err != nil {
		return nil, err
	}
	if id == "" || len(id) > 64 {
		return nil, licadmin.Errorf(licadmin.ENOTFOUND, "reminder %s not found", id)
	}
	return x.Store.GetReminder(ctx, c.AccountID, id)
}

// remind reminds users, a group of store.RemindGroup per transaction and
// a few groups at a time, and returns how many got an email queued. It
// fails when a user cannot be reminded for another reason than the rules
// (the admin lost its role, an outage).
func (x *Reminders) remind(ctx context.Context, c *licadmin.Caller, reminderID string, users []*licadmin.User) (int64, error) {
	var (
		mu     sync.Mutex
		queued int64
		errs   []error
		wg     sync.WaitGroup
	)
	var groups [][]*licadmin.User
	for from := 0; from < len(users); from += store.RemindGroup {
		groups = append(groups, users[from:min(len(users), from+store.RemindGroup)])
	}
	next := make(chan []*licadmin.User)
	for range min(reminderWorkers, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range next {
				ok, err := x.Store.RemindUsers(ctx, c, g, reminderID, x.Now.Read())
				mu.Lock()
				for _, q := range ok {
					if q {
						queued++
					}
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
	return queued, errors.Join(errs...)
}

// HandleSQS is the reminder function's handler: it runs the job of each
// message, and reports the jobs that failed and may succeed when tried
// again, so that the queue redelivers just those.
func (x *Reminders) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, m := range ev.Records {
		var j reminderJob
		if err := json.Unmarshal([]byte(m.Body), &j); err != nil || j.AccountID == "" || j.ReminderID == "" {
			x.logger().ErrorContext(ctx, "reminder job dropped: malformed", "messageId", m.MessageId)
			continue
		}
		if err := x.Run(ctx, j.AccountID, j.ReminderID); err != nil {
			x.logger().ErrorContext(ctx, "reminder job failed; the queue delivers it again", "reminderId", j.ReminderID, "err", err.Error())
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

// Run reminds the pending users of a running reminder, a page at a time
// from its position, until every user was read (done) or the time is up:
// then it puts the job back on the queue and returns. A reminder that is
// not running, or that another invocation advanced, is left alone; one
// whose admin lost the role ends failed. An error means the job may be
// tried again: the page goes again, and its users already reminded count
// once.
func (x *Reminders) Run(ctx context.Context, accountID, reminderID string) error {
	rem, err := x.Store.GetReminder(ctx, accountID, reminderID)
	if licadmin.ErrorCode(err) == licadmin.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	c := &licadmin.Caller{Email: rem.Actor, AccountID: rem.AccountID, Role: licadmin.RoleAdmin}
	deadline := x.deadline(ctx)
	log := x.logger().With("reminderId", rem.ID, "accountId", rem.AccountID)
	for page := 0; rem.Status == licadmin.ReminderRunning; page++ {
		if page > 0 && x.Now.Read().After(deadline) {
			body, _ := json.Marshal(reminderJob{AccountID: rem.AccountID, ReminderID: rem.ID})
			if err := x.send(ctx, body); err != nil {
				return fmt.Errorf("continue reminder %s: %w", rem.ID, err)
			}
			log.InfoContext(ctx, "reminder continues in a fresh invocation", "queued", rem.Queued, "skipped", rem.Skipped)
			return nil
		}
		users, next, err := x.Store.PendingUsers(ctx, rem.AccountID, x.page(), rem.Cursor)
		if err != nil {
			return err
		}
		queued, err := x.remind(ctx, c, rem.ID, users)
		status, reason := licadmin.ReminderRunning, ""
		switch {
		case licadmin.ErrorCode(err) == licadmin.EFORBIDDEN:
			status, reason = licadmin.ReminderFailed, rem.Actor+", who asked for the reminder, is no longer an administrator of the account"
		case err != nil:
			return err
		case next == nil:
			status = licadmin.ReminderDone
		}
		err = x.Store.AdvanceReminder(ctx, rem, queued, int64(len(users))-queued, next, status, reason, x.Now.Read())
		if errors.Is(err, licadmin.ErrReminderMoved) {
			log.WarnContext(ctx, "reminder advanced by another invocation; this one stops")
			return nil
		}
		if err != nil {
			return err
		}
		rem.Seq++
		rem.Cursor, rem.Status = next, status
		rem.Queued += queued
		rem.Skipped += int64(len(users)) - queued
	}
	log.InfoContext(ctx, "reminder ended", "status", rem.Status, "queued", rem.Queued, "skipped", rem.Skipped)
	return nil
}

func (x *Reminders) page() int {
	if x.Page > 0 {
		return x.Page
	}
	return ReminderPage
}

// deadline is when an invocation stops taking new pages.
func (x *Reminders) deadline(ctx context.Context) time.Time {
	margin := x.Margin
	if margin == 0 {
		margin = DefaultReminderMargin
	}
	return licadmin.WorkDeadline(ctx, x.Now.Read(), margin, x.MaxRunTime)
}

func (x *Reminders) logger() *slog.Logger { return cmp.Or(x.Logger, slog.Default()) }
