// Package notify delivers License Admin's emails from the outbox: a change
// that sends an email writes an outbox item in its own transaction, and the
// table's stream hands the item to Deliver after the change committed.
// Deliver claims the item, renders and sends the message, and marks the
// item sent, or failed when the mail service refuses it for good; a failure
// worth retrying (SES throttling, an outage) is retried with backoff, then
// handed to the sweeper (ErrDeferred), which delivers it again at its retry
// time, so that an SES outage never holds the stream. PoolChanged turns a pool
// whose available licenses fell to the alert threshold into one alert per
// admin, once per crossing.
package notify

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"time"

	"licenseadmin/shared/activation"
	"licenseadmin/shared/email"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// Store is what delivery needs from storage.
type Store interface {
	ClaimOutbox(ctx context.Context, id, claim string, now, leaseUntil time.Time) (*store.Outbox, error)
	MarkOutboxSent(ctx context.Context, id, claim, messageID string, attempts int64, now time.Time) error
	MarkOutboxFailed(ctx context.Context, id, claim, reason string, attempts int64, now time.Time) error
	ReleaseOutbox(ctx context.Context, id, claim, reason string, attempts int64, retryAt time.Time) error
	DueOutbox(ctx context.Context, now time.Time, limit int) ([]*store.Outbox, error)
	PutOutboxOnce(ctx context.Context, o *store.Outbox) (bool, error)
	AccountAdmins(ctx context.Context, accountID string) ([]*licadmin.User, error)
	LoadUsers(ctx context.Context, ids ...string) ([]*licadmin.User, error)
}

// Links mints activation links.
type Links interface {
	Mint(ctx context.Context, o *store.Outbox) (*activation.Link, error)
}

// Defaults of Service's limits.
const (
	DefaultSendAttempts = 5
	DefaultLease        = 2 * time.Minute
	// minBackoff and maxBackoff bound the wait between two sends of one
	// delivery (full jitter, doubling): SES's sandbox allows one message a
	// second, production accounts more.
	minBackoff = 250 * time.Millisecond
	maxBackoff = 4 * time.Second
)

// ErrRetryLater wraps the failure of a delivery that should be tried again
// later (the stream redelivers the record).
var ErrRetryLater = errors.New("email not sent yet; retry later")

// ErrDeferred wraps the failure of a delivery whose item is left to the
// sweeper: pending again with its next retry time (or, if that write
// failed, claimed until its lease ends), and in the sweeper's index either
// way. The stream takes it as done: a record that waited for SES would
// hold every record behind it on its shard (confirmations, alerts, log
// purges) and, after its last retry, send them all to StreamFailureQueue.
// It wraps ErrRetryLater.
var ErrDeferred = fmt.Errorf("%w: the outbox sweeper delivers it again", ErrRetryLater)

// Service delivers outbox items.
type Service struct {
	Store    Store
	Sender   email.Sender
	Renderer *email.Renderer
	Links    Links
	Logger   *slog.Logger
	Now      licadmin.Clock
	// SendAttempts bounds the sends of one delivery; DefaultSendAttempts
	// when zero.
	SendAttempts int
	// Lease is how long a claim holds an item; it must outlast one
	// delivery (the function's timeout). DefaultLease when zero.
	Lease time.Duration
	// Sleep waits between sends; tests replace it.
	Sleep func(context.Context, time.Duration) error
	// MaxAttempts is how many sends an email gets, over all its
	// deliveries, before the sweeper gives it up; DefaultMaxAttempts when
	// zero. MaxAge bounds its life the same way; DefaultMaxAge when zero.
	MaxAttempts int64
	MaxAge      time.Duration
	// Metrics counts the emails deferred and given up; nil counts nothing.
	Metrics Metrics
}

// Metrics is told of each delivery left to the sweeper for later (a long
// run of them is an SES outage that no function error shows any more) and
// of each email the sweeper gives up.
type Metrics interface {
	EmailDeferred(kind string)
	EmailGivenUp(kind string)
}

// Deliver sends the email of outbox item o (as the stream saw it) unless it
// was already sent or failed. It returns nil when the item is done (sent,
// or failed for good: status "failed" and an error log), an error wrapping
// ErrDeferred when its sends failed for now and the sweeper has it, and
// one wrapping ErrRetryLater when it should be delivered again later
// (DynamoDB failed, or another delivery holds it).
func (s *Service) Deliver(ctx context.Context, o *store.Outbox) error {
	claim := newClaim()
	now := s.Now.Read()
	item, err := s.Store.ClaimOutbox(ctx, o.ID, claim, now, now.Add(s.lease()))
	switch {
	case errors.Is(err, store.ErrOutboxDone):
		s.logger().DebugContext(ctx, "outbox item already delivered", "outboxId", o.ID)
		return nil
	case errors.Is(err, store.ErrOutboxBusy):
		return fmt.Errorf("outbox %s: %w: %w", o.ID, ErrRetryLater, err)
	case err != nil:
		return fmt.Errorf("outbox %s: %w: %w", o.ID, ErrRetryLater, err)
	}
	log := s.logger().With("outboxId", item.ID, "kind", string(item.Kind), "accountId", item.AccountID, "userId", item.UserID)

	msg, err := s.message(ctx, item)
	if err != nil {
		if errors.Is(err, errUndeliverable) {
			return s.fail(ctx, log, item, claim, item.Attempts, err)
		}
		return s.release(ctx, log, item, claim, item.Attempts, err)
	}
	attempts := item.Attempts
	for try := 1; ; try++ {
		attempts++
		id, err := s.Sender.Send(ctx, msg)
		if err == nil {
			if merr := s.Store.MarkOutboxSent(ctx, item.ID, claim, id, attempts, s.Now.Read()); merr != nil {
				// Sent, but not recorded: a redelivery would send it again.
				log.ErrorContext(ctx, "email sent but the outbox item was not marked sent", "messageId", id, "err", merr.Error())
				return nil
			}
			log.InfoContext(ctx, "email sent", "messageId", id, "attempts", attempts)
			return nil
		}
		class := email.Classify(err)
		if class == email.Permanent {
			return s.fail(ctx, log, item, claim, attempts, err)
		}
		log.WarnContext(ctx, "email not sent; will retry", "attempt", attempts, "throttled", class == email.Throttled, "err", err.Error())
		wait := backoff(try)
		if try >= s.sendAttempts() || !s.hasTime(ctx, wait) {
			return s.release(ctx, log, item, claim, attempts, err)
		}
		if serr := s.sleep(ctx, wait); serr != nil {
			return s.release(ctx, log, item, claim, attempts, err)
		}
	}
}

// errUndeliverable marks an item that no retry can send (an unknown kind,
// a recipient without an address).
var errUndeliverable = errors.New("undeliverable email")

// message renders the email of item; an activation email first mints its
// link.
func (s *Service) message(ctx context.Context, item *store.Outbox) (email.Message, error) {
	if item.Email == "" {
		return email.Message{}, fmt.Errorf("%w: the outbox item has no recipient address", errUndeliverable)
	}
	d := email.Data{FirstName: item.FirstName, Tier: item.Tier, Available: item.Available, Threshold: item.Threshold}
	switch item.Kind {
	case licadmin.EmailActivation:
		link, err := s.Links.Mint(ctx, item)
		if err != nil {
			return email.Message{}, err
		}
		d.Link, d.ExpiresAt = link.URL, link.ExpiresAt
	case licadmin.EmailLicenseAssigned, licadmin.EmailLowPool:
	case licadmin.EmailImportEnded:
		n := item.Import
		if n == nil {
			return email.Message{}, fmt.Errorf("%w: an import_ended item without its import", errUndeliverable)
		}
		d.Import = email.ImportFigures{ID: n.ImportID, FileName: n.FileName, Status: n.Status,
			Rows: n.Rows, Created: n.Created, Failed: n.Failed, Unlicensed: n.Unlicensed}
	default:
		return email.Message{}, fmt.Errorf("%w: unknown kind %q", errUndeliverable, item.Kind)
	}
	m, err := s.Renderer.Render(item.Kind, item.Language, item.Email, d)
	if err != nil {
		return email.Message{}, fmt.Errorf("%w: %w", errUndeliverable, err)
	}
	return m, nil
}

// fail marks item failed for good; the failure is logged as an error.
func (s *Service) fail(ctx context.Context, log *slog.Logger, item *store.Outbox, claim string, attempts int64, cause error) error {
	log.ErrorContext(ctx, "email failed permanently; not retried", "attempts", attempts, "err", cause.Error())
	if err := s.Store.MarkOutboxFailed(ctx, item.ID, claim, cause.Error(), attempts, s.Now.Read()); err != nil {
		return fmt.Errorf("outbox %s: %w: %w", item.ID, ErrRetryLater, err)
	}
	return nil
}

// release hands item back to the sweeper, due again after RetryDelay.
func (s *Service) release(ctx context.Context, log *slog.Logger, item *store.Outbox, claim string, attempts int64, cause error) error {
	retryAt := s.Now.Read().Add(RetryDelay(attempts, s.sendAttempts()))
	log.ErrorContext(ctx, "email not sent; the outbox sweeper will deliver it again", "attempts", attempts, "retryAt", retryAt, "err", cause.Error())
	if s.Metrics != nil {
		s.Metrics.EmailDeferred(string(item.Kind))
	}
	// Release even if ctx is ending: otherwise the item waits for its lease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.Store.ReleaseOutbox(rctx, item.ID, claim, cause.Error(), attempts, retryAt); err != nil {
		// Still in the sweeper's index (only sent and failed items
		// leave it): the sweeper takes it once the lease is over.
		log.ErrorContext(ctx, "outbox claim not released; the sweeper delivers it once its lease ends", "err", err.Error())
	}
	return fmt.Errorf("outbox %s: %w: %w", item.ID, ErrDeferred, cause)
}

// Sweeper limits: an email is sent at most DefaultMaxAttempts times (five
// deliveries of DefaultSendAttempts sends) over at most DefaultMaxAge;
// past either, the sweeper marks it failed. Between deliveries it waits
// RetryDelay: 1 min after the first, doubling, at most MaxRetryDelay.
const (
	DefaultMaxAttempts = 5 * DefaultSendAttempts
	DefaultMaxAge      = 24 * time.Hour
	MaxRetryDelay      = time.Hour
	// SweepBatch is how many due items one sweep takes.
	SweepBatch = 100
)

// RetryDelay is how long an email released after attempts sends (of
// sendAttempts per delivery) waits before the sweeper delivers it again.
func RetryDelay(attempts int64, sendAttempts int) time.Duration {
	deliveries := max(1, attempts/int64(max(1, sendAttempts)))
	return min(time.Minute<<min(deliveries-1, 10), MaxRetryDelay)
}

// SweepResult counts what one sweep did.
type SweepResult struct {
	Due, Delivered, Retrying, GivenUp, Busy int
}

// Sweep re-drives the outbox items the table's stream left undelivered
// (its retries ran out while SES failed, or the function died holding a
// claim): each due item is delivered again, up to SweepBatch per call,
// the stream's own path (Deliver: claim, send, mark), so an item sent
// meanwhile is skipped and none is sent twice. An item past MaxAttempts
// sends or MaxAge is marked failed instead, logged as an error and
// counted (Metrics), so that operators see it. The scheduled sweeper
// function calls it every few minutes.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	now := s.Now.Read()
	due, err := s.Store.DueOutbox(ctx, now, SweepBatch)
	if err != nil {
		return res, err
	}
	res.Due = len(due)
	for _, o := range due {
		if ctx.Err() != nil {
			break
		}
		if o.Attempts >= s.maxAttempts() || now.Sub(o.CreatedAt) > s.maxAge() {
			switch err := s.giveUp(ctx, o); {
			case err == nil:
				res.GivenUp++
			case errors.Is(err, store.ErrOutboxBusy):
				res.Busy++
			case !errors.Is(err, store.ErrOutboxDone):
				return res, err
			}
			continue
		}
		switch err := s.Deliver(ctx, o); {
		case err == nil:
			res.Delivered++
		case errors.Is(err, store.ErrOutboxBusy):
			res.Busy++
		default:
			res.Retrying++
		}
	}
	s.logger().InfoContext(ctx, "outbox swept", "due", res.Due, "delivered", res.Delivered, "retrying", res.Retrying, "givenUp", res.GivenUp, "busy", res.Busy)
	return res, nil
}

// giveUp marks o failed for good: it ran out of attempts or time.
func (s *Service) giveUp(ctx context.Context, o *store.Outbox) error {
	claim := newClaim()
	now := s.Now.Read()
	item, err := s.Store.ClaimOutbox(ctx, o.ID, claim, now, now.Add(s.lease()))
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("given up after %d sends over %s; last error: %s", item.Attempts, now.Sub(item.CreatedAt).Round(time.Minute), item.LastError)
	s.logger().ErrorContext(ctx, "email given up; marked failed", "outboxId", item.ID, "kind", string(item.Kind),
		"accountId", item.AccountID, "userId", item.UserID, "attempts", item.Attempts, "lastError", item.LastError)
	if err := s.Store.MarkOutboxFailed(ctx, item.ID, claim, reason, item.Attempts, now); err != nil {
		return err
	}
	if s.Metrics != nil {
		s.Metrics.EmailGivenUp(string(item.Kind))
	}
	return nil
}

func (s *Service) maxAttempts() int64 {
	if s.MaxAttempts > 0 {
		return s.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (s *Service) maxAge() time.Duration {
	if s.MaxAge > 0 {
		return s.MaxAge
	}
	return DefaultMaxAge
}

// PoolChanged is called with a pool item as it was before and after a
// change (eventID identifies the change's stream record). For each tier
// whose available licenses fell from above the alert threshold to at or
// below it, it queues one low-pool alert per admin of the account, with
// ids derived from the event so that a redelivered record queues nothing
// new: one alert per crossing, not one per assignment.
func (s *Service) PoolChanged(ctx context.Context, eventID, accountID string, before, after *licadmin.Pool) error {
	var crossed []licadmin.TierPool
	for _, t := range licadmin.Tiers {
		b, a := before.Tier(t), after.Tier(t)
		if a.Available < b.Available && b.Available > a.AlertThreshold && a.Available <= a.AlertThreshold {
			crossed = append(crossed, a)
		}
	}
	if len(crossed) == 0 {
		return nil
	}
	admins, err := s.Store.AccountAdmins(ctx, accountID)
	if err != nil {
		return err
	}
	now := s.Now.Read()
	for _, tp := range crossed {
		for _, adm := range admins {
			o := &store.Outbox{
				ID:   derivedID("alert", eventID, string(tp.Tier), adm.ID),
				Kind: licadmin.EmailLowPool, AccountID: accountID,
				UserID: adm.ID, Email: adm.Email, FirstName: adm.FirstName, Language: adm.Language,
				Tier: tp.Tier, Available: tp.Available, Threshold: tp.AlertThreshold, CreatedAt: now,
			}
			created, err := s.Store.PutOutboxOnce(ctx, o)
			if err != nil {
				return err
			}
			if created {
				s.logger().InfoContext(ctx, "low-pool alert queued", "accountId", accountID, "tier", string(tp.Tier),
					"available", tp.Available, "threshold", tp.AlertThreshold, "userId", adm.ID, "outboxId", o.ID)
			}
		}
	}
	return nil
}

// LicenseGained is called with a user item as it was before and after a
// change (eventID identifies the change's stream record). When the user
// held no license before and holds one after — an assignment, a transfer
// to it, a bulk assignment — it queues the license's confirmation to the
// user, from the user as committed (its email, name, language and tier),
// with an id derived from the record, so that a redelivered record queues
// nothing new. The license changes' transactions so write no outbox item
// of their own: the email still exists if and only if the change
// committed, since only committed changes reach the stream. A user
// created with a license (an import) is not a change: LicensesImported
// confirms those.
func (s *Service) LicenseGained(ctx context.Context, eventID string, before, after *licadmin.User) error {
	if before == nil || after == nil || before.License != nil || after.License == nil {
		return nil
	}
	o := store.RecipientOutbox(licadmin.EmailLicenseAssigned, after, s.Now.Read())
	o.ID = derivedID("gained", eventID)
	created, err := s.Store.PutOutboxOnce(ctx, o)
	if err != nil {
		return fmt.Errorf("confirm the license of %s: %w", after.ID, err)
	}
	if created {
		s.logger().InfoContext(ctx, "license confirmation queued", "accountId", after.AccountID, "userId", after.ID,
			"tier", string(after.License.Tier), "outboxId", o.ID)
	}
	return nil
}

// maxLoad is how many users LicensesImported reads at once (BatchGetItem
// takes at most 100 keys).
const maxLoad = 100

// LicensesImported is called with an import chunk's audit record
// (store.ActionUsersImport; any other record is ignored). It queues the
// license confirmation of each user the chunk created with a license, as
// assigning one does (docs/api.md: assigning emails the new holder). The chunk's
// transaction names them in its audit record instead of writing an email
// per row, which keeps an import at two items per row; the outbox id is
// derived from the import and the user, so that a redelivered record
// queues nothing new. A user deleted since, moved to another account or
// left without a license gets nothing; the email names the tier the user
// holds when it is queued.
func (s *Service) LicensesImported(ctx context.Context, a *store.Audit) error {
	if a == nil || a.Action != store.ActionUsersImport {
		return nil
	}
	var ids []string
	for _, sub := range a.Subjects {
		if sub["tier"] != "" && sub["userId"] != "" {
			ids = append(ids, sub["userId"])
		}
	}
	now := s.Now.Read()
	for start := 0; start < len(ids); start += maxLoad {
		users, err := s.Store.LoadUsers(ctx, ids[start:min(len(ids), start+maxLoad)]...)
		if err != nil {
			return fmt.Errorf("confirm the licenses of import %s: %w", a.Target, err)
		}
		for _, u := range users {
			if u == nil || u.AccountID != a.AccountID || u.License == nil {
				continue
			}
			o := store.RecipientOutbox(licadmin.EmailLicenseAssigned, u, now)
			o.ID = derivedID("import", a.Target, u.ID)
			created, err := s.Store.PutOutboxOnce(ctx, o)
			if err != nil {
				return err
			}
			if created {
				s.logger().InfoContext(ctx, "imported license confirmation queued", "accountId", a.AccountID, "importId", a.Target,
					"userId", u.ID, "tier", string(u.License.Tier), "outboxId", o.ID)
			}
		}
	}
	return nil
}

// derivedID is the outbox id of an email queued in answer to an event
// that may be handled twice (a stream record, an import): kind's prefix
// and a hash of what names the email (the event, then what tells its
// emails apart), so that the same email always gets the same id and a
// conditional put queues it once. The parts are joined with NUL, which
// none holds.
func derivedID(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return prefix + "-" + hex.EncodeToString(sum[:16])
}

func newClaim() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// backoff returns a full-jitter wait before send try+1.
func backoff(try int) time.Duration {
	ceiling := min(minBackoff<<(try-1), maxBackoff)
	return ceiling/2 + time.Duration(mrand.Int64N(int64(ceiling/2)+1))
}

// hasTime reports whether ctx leaves room for waiting d and sending once
// more (a few seconds) before its deadline.
func (s *Service) hasTime(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d+5*time.Second
}

func (s *Service) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	return licadmin.Sleep(ctx, d)
}

func (s *Service) sendAttempts() int {
	if s.SendAttempts > 0 {
		return s.SendAttempts
	}
	return DefaultSendAttempts
}

func (s *Service) lease() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return DefaultLease
}

func (s *Service) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }
