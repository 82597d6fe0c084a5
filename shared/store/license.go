package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"licenseadmin/shared/licadmin"
)

// Each license change is one TransactWriteItems: the pool counters with a
// condition that keeps 0 <= assigned <= purchased, the user(s) with a
// condition on the version that was read (so the license state the service
// checked is the state that is changed), the audit record, and the
// idempotency record when the request has a key.
//
// It holds no check of the caller's claim. license.Service plans every
// change from one consistent read of the claim and the users, made by the
// same request, and the transaction's conditions hold the users and the
// pool to what that read saw: the change is ordered as of that read. A
// demotion that commits while the request is in flight is ordered after
// the change (it read nothing the change writes, except the admin's own
// user item, whose version the change would then fail on), and every
// later request is refused by its own read. Every other change keeps
// callerCheck: some commit long after their caller was read (imports,
// reminders, exports), and the rest are rare enough that the item's two
// write units do not matter.

// userCond appends to e the condition that the user item is the one read:
// same account, same version.
func userCond(e *expr, u *licadmin.User) string {
	return fmt.Sprintf("%s = %s AND %s = %s",
		e.n("accountId"), e.v(str(u.AccountID)), e.n("version"), e.v(num(u.Version)))
}

// userChanged is the failure of userCond: gone (or moved, which cannot
// happen) is not found; anything else means the user changed since it was
// read, and the service plans again from a fresh read.
func userChanged(u *licadmin.User) func(Item) error {
	return func(old Item) error {
		if old == nil || getS(old, "accountId") != u.AccountID {
			return licadmin.Errorf(licadmin.ENOTFOUND, "user %s not found", u.ID)
		}
		return licadmin.ErrStale
	}
}

// next returns a copy of u as it will be after a change at now.
func next(u *licadmin.User, now time.Time) *licadmin.User {
	n := *u
	n.Version++
	n.UpdatedAt = now
	return &n
}

// dropProSettings turns off the settings that need a Pro license; a user
// who loses Pro loses them in the same transaction.
func dropProSettings(u *licadmin.User) {
	if u.Security.ProtectedReplies != "" && u.Security.ProtectedReplies != "none" {
		u.Security.ProtectedReplies = "none"
	}
}

// userLicenseUpdate builds the update of a user's license fields from u to n.
func userLicenseUpdate(e *expr, n *licadmin.User) string {
	set := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s",
		e.n("version"), e.v(num(n.Version)),
		e.n("updatedAt"), e.v(timestamp(n.UpdatedAt)),
		e.n("logGen"), e.v(num(n.LogGeneration)),
		e.n("protectedReplies"), e.v(str(n.Security.ProtectedReplies)))
	if n.License != nil {
		return set + fmt.Sprintf(", %s = %s, %s = %s",
			e.n("tier"), e.v(str(string(n.License.Tier))),
			e.n("assignedAt"), e.v(timestamp(n.License.AssignedAt)))
	}
	// Losing the license ends the log (remove, transfer, bulk remove:
	// User.EndLog): logSince is when the new generation began.
	if !n.LogSince.IsZero() {
		set += fmt.Sprintf(", %s = %s", e.n("logSince"), e.v(timestamp(n.LogSince)))
	}
	return set + fmt.Sprintf(" REMOVE %s, %s", e.n("tier"), e.n("assignedAt"))
}

func noLicense(t licadmin.Tier) func(Item) error {
	return func(Item) error {
		return licadmin.Errorf(licadmin.ENOLICENSE, "no %s license is available in the pool; add licenses or free one", t)
	}
}

// AssignLicense gives u (as read) a license of tier from the pool and
// returns the user as committed. Its confirmation email is queued from the
// table's stream (notify.Service.LicenseGained), not in the transaction. It fails with ENOLICENSE when the tier has
// none available and licadmin.ErrStale when u changed since it was read.
func (s *Store) AssignLicense(ctx context.Context, c *licadmin.Caller, u *licadmin.User, tier licadmin.Tier, now time.Time) (*licadmin.User, error) {
	n := next(u, now)
	n.License = &licadmin.License{Tier: tier, AssignedAt: now}
	t, p := s.begin(ctx, now)
	e := newExpr()
	one := e.v(num(1))
	t.update(s.Table, poolKey(c.AccountID),
		fmt.Sprintf("ADD %s %s, %s %s", e.n(assignedAttr(tier)), one, e.n(availableAttr(tier)), e.v(num(-1))),
		fmt.Sprintf("%s >= %s", e.n(availableAttr(tier)), one), e, noLicense(tier))
	ue := newExpr()
	cond := userCond(ue, u) + fmt.Sprintf(" AND attribute_not_exists(%s)", ue.n("tier"))
	t.update(s.Table, userKey(u.ID), userLicenseUpdate(ue, n), cond, ue, userChanged(u))
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionLicenseAssign, Target: u.ID,
		Details: map[string]string{"tier": string(tier)}, At: now})
	if err := s.commit(ctx, t, p, n, now); err != nil {
		return nil, err
	}
	return n, nil
}

// ModifyLicense changes u's license to tier in one swap: the new tier's
// counter takes one, the old tier's gives one back. Logs are kept.
func (s *Store) ModifyLicense(ctx context.Context, c *licadmin.Caller, u *licadmin.User, tier licadmin.Tier, now time.Time) (*licadmin.User, error) {
	from := u.License.Tier
	n := next(u, now)
	n.License = &licadmin.License{Tier: tier, AssignedAt: now}
	if tier != licadmin.Pro {
		dropProSettings(n)
	}
	t, p := s.begin(ctx, now)
	e := newExpr()
	one, minus := e.v(num(1)), e.v(num(-1))
	t.update(s.Table, poolKey(c.AccountID),
		fmt.Sprintf("ADD %s %s, %s %s, %s %s, %s %s",
			e.n(assignedAttr(tier)), one, e.n(availableAttr(tier)), minus,
			e.n(assignedAttr(from)), minus, e.n(availableAttr(from)), one),
		fmt.Sprintf("%s >= %s AND %s >= %s", e.n(availableAttr(tier)), one, e.n(assignedAttr(from)), one),
		e, noLicense(tier))
	ue := newExpr()
	cond := userCond(ue, u) + fmt.Sprintf(" AND %s = %s", ue.n("tier"), ue.v(str(string(from))))
	t.update(s.Table, userKey(u.ID), userLicenseUpdate(ue, n), cond, ue, userChanged(u))
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionLicenseModify, Target: u.ID,
		Details: map[string]string{"from": string(from), "to": string(tier)}, At: now})
	if err := s.commit(ctx, t, p, n, now); err != nil {
		return nil, err
	}
	return n, nil
}

// RemoveLicense takes u's license back into the pool and bumps u's log
// generation, so that its logs are unreadable at once (docs/api.md, rule 6).
func (s *Store) RemoveLicense(ctx context.Context, c *licadmin.Caller, u *licadmin.User, now time.Time) (*licadmin.User, error) {
	from := u.License.Tier
	n := next(u, now)
	n.License = nil
	n.EndLog(now)
	dropProSettings(n)
	t, p := s.begin(ctx, now)
	s.releaseLicense(t, c.AccountID, from)
	ue := newExpr()
	cond := userCond(ue, u) + fmt.Sprintf(" AND %s = %s", ue.n("tier"), ue.v(str(string(from))))
	t.update(s.Table, userKey(u.ID), userLicenseUpdate(ue, n), cond, ue, userChanged(u))
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionLicenseRemove, Target: u.ID,
		Details: map[string]string{"tier": string(from), "logGeneration": strconv.FormatInt(n.LogGeneration, 10)}, At: now})
	if err := s.commit(ctx, t, p, n, now); err != nil {
		return nil, err
	}
	return n, nil
}

// releaseLicense appends the pool update that gives one license of tier back.
func (s *Store) releaseLicense(t *txn, accountID string, tier licadmin.Tier) {
	e := newExpr()
	one := e.v(num(1))
	t.update(s.Table, poolKey(accountID),
		fmt.Sprintf("ADD %s %s, %s %s", e.n(assignedAttr(tier)), e.v(num(-1)), e.n(availableAttr(tier)), one),
		fmt.Sprintf("%s >= %s", e.n(assignedAttr(tier)), one), e,
		func(Item) error {
			return fmt.Errorf("pool of %s: assigned %s counter is already zero", accountID, tier)
		})
}

// TransferLicense moves from's license to to, keeping the tier; the pool is
// unchanged. The former holder's log generation is bumped (docs/api.md, rule 6). It
// returns the new holder as committed.
//
// from and to the same user is ETARGETHASLICENSE, answered without sending:
// a transaction may name the user once.
func (s *Store) TransferLicense(ctx context.Context, c *licadmin.Caller, from, to *licadmin.User, now time.Time) (*licadmin.User, error) {
	if from.ID == to.ID {
		return nil, licadmin.Errorf(licadmin.ETARGETHASLICENSE, "the target user already holds a license (%s)", from.License.Tier)
	}
	tier := from.License.Tier
	nf := next(from, now)
	nf.License = nil
	nf.EndLog(now)
	dropProSettings(nf)
	nt := next(to, now)
	nt.License = &licadmin.License{Tier: tier, AssignedAt: now}
	t, p := s.begin(ctx, now)
	fe := newExpr()
	fcond := userCond(fe, from) + fmt.Sprintf(" AND %s = %s", fe.n("tier"), fe.v(str(string(tier))))
	t.update(s.Table, userKey(from.ID), userLicenseUpdate(fe, nf), fcond, fe, userChanged(from))
	te := newExpr()
	tcond := userCond(te, to) + fmt.Sprintf(" AND attribute_not_exists(%s)", te.n("tier"))
	t.update(s.Table, userKey(to.ID), userLicenseUpdate(te, nt), tcond, te, userChanged(to))
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionLicenseTransfer, Target: to.ID,
		Details: map[string]string{"tier": string(tier), "from": from.ID, "fromLogGeneration": strconv.FormatInt(nf.LogGeneration, 10)}, At: now})
	if err := s.commit(ctx, t, p, nt, now); err != nil {
		return nil, err
	}
	return nt, nil
}

// DeleteFromPool removes quantity unassigned licenses of tier from pool (the
// pool as read) and returns the pool after the change. It fails with
// ELICENSESINUSE when fewer than quantity are unassigned.
//
// Without an Idempotency-Key the only condition is that enough licenses are
// unassigned, and the answer is the pool read right after the commit, so
// concurrent assignments never make it retry. With a key the answer must be
// known before the commit (it is recorded in the same transaction), so the
// tier's counters must also still be those read: ErrStale otherwise, and the
// service plans again.
func (s *Store) DeleteFromPool(ctx context.Context, c *licadmin.Caller, pool *licadmin.Pool, tier licadmin.Tier, quantity int64, now time.Time) (*licadmin.Pool, error) {
	read := pool.Tier(tier)
	after := &licadmin.Pool{Tiers: append([]licadmin.TierPool(nil), pool.Tiers...)}
	for i := range after.Tiers {
		if after.Tiers[i].Tier == tier {
			after.Tiers[i].Purchased -= quantity
			after.Tiers[i].Available -= quantity
		}
	}
	t, p := s.begin(ctx, now)
	e := newExpr()
	cond := fmt.Sprintf("%s >= %s", e.n(availableAttr(tier)), e.v(num(quantity)))
	if p != nil {
		cond += fmt.Sprintf(" AND %s = %s AND %s = %s",
			e.n(purchasedAttr(tier)), e.v(num(read.Purchased)), e.n(assignedAttr(tier)), e.v(num(read.Assigned)))
	}
	t.update(s.Table, poolKey(c.AccountID),
		fmt.Sprintf("ADD %s %s, %s %s", e.n(purchasedAttr(tier)), e.v(num(-quantity)), e.n(availableAttr(tier)), e.v(num(-quantity))),
		cond, e,
		func(old Item) error {
			if avail := getN(old, availableAttr(tier)); avail < quantity {
				return licadmin.Errorf(licadmin.ELICENSESINUSE, "only %d %s licenses are unassigned; remove licenses from users first", avail, tier)
			}
			return licadmin.ErrStale
		})
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionLicensesDelete, Target: string(tier),
		Details: map[string]string{"quantity": strconv.FormatInt(quantity, 10)}, At: now})
	if err := s.commit(ctx, t, p, after, now); err != nil {
		return nil, err
	}
	if p != nil {
		return after, nil
	}
	return s.Pool(ctx, c.AccountID)
}
