package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"licenseadmin/shared/licadmin"
)

// ActionLicenseBulk is a bulk license change: its target is the action,
// its subjects the users it named (userId, from and to tiers, "" for none,
// and the new log generation of a user whose license was removed).
const ActionLicenseBulk = "license.bulk"

// BulkLicenses applies action to the users us (as read: distinct, of c's
// account; the service checked that each can take it) in one transaction,
// all or nothing, and returns them as committed, in order:
//
//   - the pool, once, with the counters of every tier the change moves
//     and one condition per tier: available_<tier> covers the licenses
//     taken, assigned_<tier> the licenses given back;
//   - each user, on the condition that it is the version read and holds
//     the license it was read with; a user that the action leaves as it is
//     (a modify to its own tier) is a condition check, so that the answer
//     is true when the change commits; a removal bumps each user's log
//     generation (SPEC rule 6);
//   - one audit record naming every user, and the idempotency record.
//
// An assignment's confirmation emails are queued from the table's stream,
// as a single assignment's are (notify.Service.LicenseGained).
//
// At most licadmin.MaxBulkUsers users fit in the transaction. It fails
// with ENOLICENSE when the pool lacks licenses of tier for them
// all (the message says how many are needed and available), ENOTFOUND when
// a user is gone, licadmin.ErrStale when one changed since it was read.
// When no user changes, it writes nothing and returns us.
func (s *Store) BulkLicenses(ctx context.Context, c *licadmin.Caller, action licadmin.BulkAction, tier licadmin.Tier, us []*licadmin.User, now time.Time) (*licadmin.Users, error) {
	out := &licadmin.Users{Items: make([]*licadmin.User, len(us))}
	delta := map[licadmin.Tier]int64{} // assigned_<tier> after minus before
	changed := 0
	for i, u := range us {
		n := next(u, now)
		switch action {
		case licadmin.BulkAssign:
			n.License = &licadmin.License{Tier: tier, AssignedAt: now}
		case licadmin.BulkModify:
			if u.License.Tier == tier {
				out.Items[i] = u
				continue
			}
			n.License = &licadmin.License{Tier: tier, AssignedAt: now}
			if tier != licadmin.Pro {
				dropProSettings(n)
			}
		case licadmin.BulkRemove:
			n.License = nil
			n.EndLog(now)
			dropProSettings(n)
		}
		if u.License != nil {
			delta[u.License.Tier]--
		}
		if n.License != nil {
			delta[n.License.Tier]++
		}
		out.Items[i] = n
		changed++
	}
	if changed == 0 {
		return out, nil
	}

	t, p := s.begin(ctx, now)
	s.movePool(t, c.AccountID, tier, delta)
	subjects := make([]map[string]string, len(us))
	for i, u := range us {
		n := out.Items[i]
		ue := newExpr()
		cond := userCond(ue, u)
		if u.License != nil {
			cond += fmt.Sprintf(" AND %s = %s", ue.n("tier"), ue.v(str(string(u.License.Tier))))
		} else {
			cond += fmt.Sprintf(" AND attribute_not_exists(%s)", ue.n("tier"))
		}
		sub := map[string]string{"userId": u.ID, "from": tierOf(u), "to": tierOf(n)}
		subjects[i] = sub
		if n == u {
			t.check(s.Table, userKey(u.ID), cond, ue, userChanged(u))
			continue
		}
		t.update(s.Table, userKey(u.ID), userLicenseUpdate(ue, n), cond, ue, userChanged(u))
		if n.LogGeneration != u.LogGeneration {
			sub["logGeneration"] = strconv.FormatInt(n.LogGeneration, 10)
		}
	}
	details := map[string]string{"action": string(action), "users": strconv.Itoa(len(us)), "changed": strconv.Itoa(changed)}
	if tier != "" {
		details["tier"] = string(tier)
	}
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionLicenseBulk, Target: string(action),
		Details: details, Subjects: subjects, At: now})
	if err := s.commit(ctx, t, p, out, now); err != nil {
		return nil, err
	}
	return out, nil
}

// tierOf names u's tier, "" when it holds no license.
func tierOf(u *licadmin.User) string {
	if u.License == nil {
		return ""
	}
	return string(u.License.Tier)
}

// movePool appends the one update of the pool that a bulk change makes:
// delta[t] more licenses of each tier t assigned (fewer when negative),
// each tier conditioned on what it gives. A failure on tier (the tier the
// change takes licenses of) is ENOLICENSE, saying how many licenses the
// change needs and how many the pool had.
func (s *Store) movePool(t *txn, accountID string, tier licadmin.Tier, delta map[licadmin.Tier]int64) {
	e := newExpr()
	var adds, conds []string
	for _, tr := range licadmin.Tiers {
		d := delta[tr]
		if d == 0 {
			continue
		}
		adds = append(adds, fmt.Sprintf("%s %s, %s %s", e.n(assignedAttr(tr)), e.v(num(d)), e.n(availableAttr(tr)), e.v(num(-d))))
		if d > 0 {
			conds = append(conds, fmt.Sprintf("%s >= %s", e.n(availableAttr(tr)), e.v(num(d))))
		} else {
			conds = append(conds, fmt.Sprintf("%s >= %s", e.n(assignedAttr(tr)), e.v(num(-d))))
		}
	}
	if len(adds) == 0 {
		return
	}
	need := delta[tier]
	t.update(s.Table, poolKey(accountID), "ADD "+strings.Join(adds, ", "), strings.Join(conds, " AND "), e,
		func(old Item) error {
			if avail := getN(old, availableAttr(tier)); need > 0 && avail < need {
				return licadmin.Errorf(licadmin.ENOLICENSE, "%d %s licenses are needed and %d %s available; add licenses or free some", need, tier, avail, plural(avail, "is", "are"))
			}
			// A counter that a user read gives back is already lower: that
			// user changed, and its own condition failed too (ErrStale).
			return fmt.Errorf("pool of %s: the counters cannot take the change %v", accountID, delta)
		})
}

// plural returns one when n is 1, else many.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
