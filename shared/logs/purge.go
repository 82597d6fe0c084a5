package logs

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// PurgeStore is what purging needs from storage.
type PurgeStore interface {
	PurgeLogs(ctx context.Context, userID string, gen int64, budget int) (deleted int, done bool, err error)
	PurgeUsage(ctx context.Context, userID string, budget int) (deleted int, done bool, err error)
	SavePurge(ctx context.Context, j *store.PurgeJob, now time.Time) error
	DeletePurge(ctx context.Context, j *store.PurgeJob) error
}

// FilePurger deletes the export files of purged log generations. Exports
// is one: it hands the deletion to the export function through the export
// queue, so that the stream's function, which purges, needs no S3 client.
type FilePurger interface {
	PurgeFiles(ctx context.Context, f FilePurge) error
}

// FilePurge names the export files of a purge: those of log generations
// FromGen..ToGen of user UserID of account AccountID, or every file of the
// user when Deleted.
type FilePurge struct {
	AccountID string `json:"accountId"`
	UserID    string `json:"userId"`
	FromGen   int64  `json:"fromGen"`
	ToGen     int64  `json:"toGen"`
	Deleted   bool   `json:"deleted,omitempty"`
}

// Prefixes returns the key prefixes of f's files: the user's, for a
// deleted user, else one per generation.
func (f FilePurge) Prefixes() []string {
	if f.Deleted {
		return []string{UserPrefix(f.AccountID, f.UserID)}
	}
	var prefixes []string
	for gen := f.FromGen; gen <= f.ToGen; gen++ {
		prefixes = append(prefixes, GenerationPrefix(f.AccountID, f.UserID, gen))
	}
	return prefixes
}

// Purger deletes the log entries that no read can reach any more: those of
// the generations that remove or transfer left behind, and every entry and
// counter of a deleted user, with the export files of those generations
// (so that a download URL handed out before stops working; Files deletes
// them, the export function in AWS). It reacts to the table's stream (user
// items' MODIFY and REMOVE records) and deletes at most Budget items per call, so
// that a huge log never makes one invocation run out of time; a purge that
// is not finished saves a marker item whose own stream record triggers the
// next call, until it is. A call also stops, with a marker, when its
// invocation's deadline is near: a partition that answers slowly (DynamoDB
// throttling one hot user's log) must not make the function time out and
// retry from the top. Deletions are idempotent, so a call interrupted
// anywhere simply runs again. The entries' TTL remains the backstop.
type Purger struct {
	Store PurgeStore
	// Files deletes the export files; nil deletes none (a function
	// without the export queue; the files' one-day lifecycle is the
	// backstop).
	Files FilePurger
	Now   licadmin.Clock
	// Budget bounds the items one call deletes (DefaultPurgeBudget when 0).
	Budget int
	// Margin is the time a call leaves before its context's deadline
	// (DefaultPurgeMargin when 0).
	Margin time.Duration
	Logger *slog.Logger
}

// DefaultPurgeBudget is how many items one purge call deletes at most: a
// few seconds of BatchWriteItem calls.
const DefaultPurgeBudget = 10000

// DefaultPurgeMargin is the time a purge call leaves before its
// invocation's deadline to save its marker and answer: one step's worth
// of slow, retried BatchWriteItem calls.
const DefaultPurgeMargin = 15 * time.Second

// purgeStep is how many items a purge deletes between two looks at the
// deadline: one Query page of the store.
const purgeStep = 500

// UserChanged starts the purge of what a change of user userID of account
// accountID left unreadable: when its log generation went from oldGen up
// to newGen, the generations oldGen..newGen-1; when the user was deleted
// (newGen ignored), generation oldGen, every export file of the user and
// the user's monthly counters. Earlier generations were purged after their
// own bumps.
func (p *Purger) UserChanged(ctx context.Context, accountID, userID string, oldGen, newGen int64, deleted bool) error {
	j := &store.PurgeJob{AccountID: accountID, UserID: userID, FromGen: oldGen, ToGen: newGen - 1, Deleted: deleted}
	if deleted {
		j.ToGen = oldGen
	}
	return p.Run(ctx, j)
}

// Run does one bounded call of job j: when the job is done its marker (if
// any) is deleted, otherwise the marker is saved with the next round, and
// its stream record brings the job back. An error means the call may be
// tried again.
func (p *Purger) Run(ctx context.Context, j *store.PurgeJob) error {
	if j.Round == 0 {
		// The export files first: few, and the ones a URL may still name.
		if err := p.deleteExports(ctx, j); err != nil {
			return err
		}
	}
	deleted, done, err := p.purge(ctx, j)
	p.logger().InfoContext(ctx, "logs purged", "userId", j.UserID, "fromGen", j.FromGen, "toGen", j.ToGen,
		"userDeleted", j.Deleted, "round", j.Round, "deleted", deleted, "done", done)
	if err != nil {
		return err
	}
	if done {
		if j.Round == 0 {
			return nil
		}
		return p.Store.DeletePurge(ctx, j)
	}
	next := *j
	next.Round++
	return p.Store.SavePurge(ctx, &next, p.Now.Read())
}

// deleteExports has the export files of j's generations (of every
// generation, for a deleted user) deleted.
func (p *Purger) deleteExports(ctx context.Context, j *store.PurgeJob) error {
	if p.Files == nil || j.AccountID == "" {
		return nil
	}
	f := FilePurge{AccountID: j.AccountID, UserID: j.UserID, FromGen: j.FromGen, ToGen: j.ToGen, Deleted: j.Deleted}
	if err := p.Files.PurgeFiles(ctx, f); err != nil {
		return fmt.Errorf("delete the export files of %s: %w", j.UserID, err)
	}
	return nil
}

// purge deletes up to the budget, generation by generation, then the
// counters of a deleted user, a step at a time; it stops early (not done)
// when the deadline is near, after at least one step so that every call
// makes progress.
func (p *Purger) purge(ctx context.Context, j *store.PurgeJob) (int, bool, error) {
	budget, total := p.budget(), 0
	stopAt, hasDeadline := ctx.Deadline()
	stopAt = stopAt.Add(-p.margin())
	// drain runs one purge function step by step until it is done, or the
	// budget or the time is spent.
	drain := func(step func(budget int) (int, bool, error)) (bool, error) {
		for {
			if total >= budget || (total > 0 && hasDeadline && !time.Now().Before(stopAt)) {
				return false, nil
			}
			n, done, err := step(min(purgeStep, budget-total))
			total += n
			if err != nil || done {
				return done, err
			}
		}
	}
	for gen := j.FromGen; gen <= j.ToGen; gen++ {
		done, err := drain(func(b int) (int, bool, error) { return p.Store.PurgeLogs(ctx, j.UserID, gen, b) })
		if err != nil {
			return total, false, fmt.Errorf("purge log generation %d of %s: %w", gen, j.UserID, err)
		}
		if !done {
			return total, false, nil
		}
	}
	if j.Deleted {
		done, err := drain(func(b int) (int, bool, error) { return p.Store.PurgeUsage(ctx, j.UserID, b) })
		if err != nil {
			return total, false, fmt.Errorf("purge usage of %s: %w", j.UserID, err)
		}
		return total, done, nil
	}
	return total, true, nil
}

func (p *Purger) margin() time.Duration {
	if p.Margin > 0 {
		return p.Margin
	}
	return DefaultPurgeMargin
}

func (p *Purger) budget() int {
	if p.Budget > 0 {
		return p.Budget
	}
	return DefaultPurgeBudget
}

func (p *Purger) logger() *slog.Logger { return cmp.Or(p.Logger, slog.Default()) }
