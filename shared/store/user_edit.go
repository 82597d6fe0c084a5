package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"licenseadmin/shared/licadmin"
)

// Audit actions of user edits.
const (
	ActionUserUpdate = "user.update"
	ActionUserDelete = "user.delete"
)

// needsPro reports whether a user's settings need a Pro license.
func needsPro(u *licadmin.User) bool {
	return u.Security.ProtectedReplies != "" && u.Security.ProtectedReplies != "none"
}

// UpdateUser writes n, the edit of u (as read, same id), in one transaction:
//
//   - the user, on the condition that it is still the version read (and
//     holds a Pro license when n's settings need one);
//   - an email change moves the email claim: the new claim must not exist
//     (EEMAILTAKEN), the new domain must be approved (EDOMAINNOTAPPROVED),
//     the old claim is deleted; logs, keyed by user id, and the license stay;
//   - a role change updates the role in the claim (callers are looked up by
//     it) and the account's adminCount, which may never fall below one
//     (ELASTADMIN);
//   - the caller's admin check, the audit record, the idempotency record.
//
// emailDomain is the new email's domain when the email changes and the
// domain is not public webmail ("" otherwise); ifMatch means the client
// sent If-Match. It fails with EEMAILTAKEN when the new email is the
// caller's own, ENOTFOUND when the user is gone,
// EREQUIRESPRO, and, when u changed since the read, EPRECONDITION with
// ifMatch and licadmin.ErrStale without. It returns n as committed.
func (s *Store) UpdateUser(ctx context.Context, c *licadmin.Caller, u, n *licadmin.User, emailDomain string, ifMatch bool, now time.Time) (*licadmin.User, error) {
	if n.Email != u.Email && n.Email == c.Email {
		return nil, ownEmailTaken(n.Email)
	}
	n.Version, n.UpdatedAt = u.Version+1, now
	t, p := s.begin(ctx, now)

	// The admin count comes first: when a demotion races with the demotion
	// of the caller, "last admin" is the answer that explains the refusal.
	switch {
	case u.Role == licadmin.RoleAdmin && n.Role != licadmin.RoleAdmin:
		s.removeAdmin(t, u.AccountID)
	case u.Role != licadmin.RoleAdmin && n.Role == licadmin.RoleAdmin:
		e := newExpr()
		t.update(s.Table, accountKey(u.AccountID), fmt.Sprintf("ADD %s %s", e.n("adminCount"), e.v(num(1))),
			fmt.Sprintf("attribute_exists(%s)", e.n(attrPK)), e,
			func(Item) error { return licadmin.Errorf(licadmin.ENOTFOUND, "account not found") })
	}

	ue := newExpr()
	cond := userCond(ue, u)
	if needsPro(n) {
		cond += fmt.Sprintf(" AND %s = %s", ue.n("tier"), ue.v(str(string(licadmin.Pro))))
	}
	t.update(s.Table, userKey(u.ID), userEditUpdate(ue, n), cond, ue, func(old Item) error {
		switch {
		case old == nil || getS(old, "accountId") != u.AccountID:
			return licadmin.Errorf(licadmin.ENOTFOUND, "user %s not found", u.ID)
		case getN(old, "version") != u.Version && ifMatch:
			return licadmin.Errorf(licadmin.EPRECONDITION, "the user changed since you read it; read it again and retry")
		case getN(old, "version") != u.Version:
			return licadmin.ErrStale
		}
		return licadmin.Errorf(licadmin.EREQUIRESPRO, "protected replies by SMS or Microsoft need a Pro license")
	})

	self := c.UserID == u.ID
	claimOp := true
	switch {
	case n.Email != u.Email:
		if emailDomain != "" {
			s.checkDomainApproved(t, u.AccountID, emailDomain, func(Item) error { return domainNotApproved(emailDomain) })
		}
		t.putNew(s.Table, emailClaim(n), func(Item) error {
			return emailTaken(n.Email)
		})
		oe := newExpr()
		t.delete(s.Table, emailKey(u.Email), ownClaimCond(oe, u, self), oe, ownClaimChanged(self))
	case n.Role != u.Role:
		e := newExpr()
		t.update(s.Table, emailKey(u.Email), fmt.Sprintf("SET %s = %s", e.n("role"), e.v(str(string(n.Role)))),
			ownClaimCond(e, u, self), e, ownClaimChanged(self))
	default:
		claimOp = false
	}
	// A transaction may name an item once: when the caller edits its own
	// claim, the claim's condition is the admin check.
	if !self || !claimOp {
		s.callerCheck(t, c)
	}
	s.addAudit(ctx, t, Audit{AccountID: u.AccountID, Actor: c.Email, Action: ActionUserUpdate, Target: u.ID,
		Details: changes(u, n), At: now})
	if err := s.commit(ctx, t, p, n, now); err != nil {
		return nil, err
	}
	return n, nil
}

// removeAdmin appends the decrement of the account's admin count, refused
// when it would leave the account without an admin (docs/api.md, rule 5).
func (s *Store) removeAdmin(t *txn, accountID string) {
	e := newExpr()
	one := e.v(num(1))
	t.update(s.Table, accountKey(accountID), fmt.Sprintf("ADD %s %s", e.n("adminCount"), e.v(num(-1))),
		fmt.Sprintf("%s > %s", e.n("adminCount"), one), e,
		func(old Item) error {
			if old == nil {
				return licadmin.Errorf(licadmin.ENOTFOUND, "account not found")
			}
			return licadmin.Errorf(licadmin.ELASTADMIN, "the account must keep at least one administrator; promote another user first")
		})
}

// ownClaimCond is the condition on the email claim of u: it still names u
// and, when u is the caller, the caller is still an admin of its account.
func ownClaimCond(e *expr, u *licadmin.User, self bool) string {
	cond := fmt.Sprintf("%s = %s", e.n("userId"), e.v(str(u.ID)))
	if self {
		cond += fmt.Sprintf(" AND %s = %s AND %s = %s", e.n("accountId"), e.v(str(u.AccountID)), e.n("role"), e.v(str(string(licadmin.RoleAdmin))))
	}
	return cond
}

func ownClaimChanged(self bool) func(Item) error {
	return func(Item) error {
		if self {
			return licadmin.Errorf(licadmin.EFORBIDDEN, "only administrators of the account may do this")
		}
		return licadmin.ErrStale
	}
}

// userEditUpdate builds the update of every editable field of a user to n.
func userEditUpdate(e *expr, n *licadmin.User) string {
	set := []string{
		fmt.Sprintf("%s = %s", e.n("version"), e.v(num(n.Version))),
		fmt.Sprintf("%s = %s", e.n("updatedAt"), e.v(timestamp(n.UpdatedAt))),
		fmt.Sprintf("%s = %s", e.n("email"), e.v(str(n.Email))),
		fmt.Sprintf("%s = %s", e.n("firstName"), e.v(str(n.FirstName))),
		fmt.Sprintf("%s = %s", e.n("lastName"), e.v(str(n.LastName))),
		fmt.Sprintf("%s = %s", e.n("language"), e.v(str(n.Language))),
		fmt.Sprintf("%s = %s", e.n("role"), e.v(str(string(n.Role)))),
		fmt.Sprintf("%s = %s", e.n("portal2fa"), e.v(boolean(n.Security.Portal2FA))),
		fmt.Sprintf("%s = %s", e.n("protectedReplies"), e.v(str(n.Security.ProtectedReplies))),
	}
	var remove []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"mobile", n.Mobile}, {"timeZone", n.TimeZone}} {
		if f.v != nil {
			set = append(set, fmt.Sprintf("%s = %s", e.n(f.name), e.v(str(*f.v))))
		} else {
			remove = append(remove, e.n(f.name))
		}
	}
	update := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		update += " REMOVE " + strings.Join(remove, ", ")
	}
	return update
}

// changes lists, for the audit record, each field an edit changed as
// "old -> new" (the names of changed fields in "fields").
func changes(u, n *licadmin.User) map[string]string {
	opt := func(s *string) string {
		if s == nil {
			return "null"
		}
		return *s
	}
	d := map[string]string{}
	for _, f := range []struct{ name, old, new string }{
		{"email", u.Email, n.Email},
		{"firstName", u.FirstName, n.FirstName},
		{"lastName", u.LastName, n.LastName},
		{"language", u.Language, n.Language},
		{"role", string(u.Role), string(n.Role)},
		{"mobile", opt(u.Mobile), opt(n.Mobile)},
		{"timeZone", opt(u.TimeZone), opt(n.TimeZone)},
		{"portal2fa", strconv.FormatBool(u.Security.Portal2FA), strconv.FormatBool(n.Security.Portal2FA)},
		{"protectedReplies", u.Security.ProtectedReplies, n.Security.ProtectedReplies},
	} {
		if f.old != f.new {
			d[f.name] = f.old + " -> " + f.new
		}
	}
	names := slices.Sorted(maps.Keys(d))
	d["fields"] = strings.Join(names, ",")
	return d
}

// DeleteUser deletes u (as read) in one transaction: the user item, on the
// condition that it is still the version read (so the license it holds is
// the one released), its email claim, its license back to the pool, the
// account's adminCount for an admin (ELASTADMIN for the last one), the
// caller's admin check, the audit record and the idempotency record. It
// fails with ENOTFOUND when the user is gone and licadmin.ErrStale when it
// changed since the read.
//
// The user's logs are keyed by its id and log generation (docs/api.md, rule 6):
// with the user gone no route reads them any more, at once and whatever
// their number. The audit record carries the id and last log generation
// that the asynchronous purge of logs deletes.
func (s *Store) DeleteUser(ctx context.Context, c *licadmin.Caller, u *licadmin.User, now time.Time) error {
	t, p := s.begin(ctx, now)
	if u.Role == licadmin.RoleAdmin {
		s.removeAdmin(t, u.AccountID)
	}
	ue := newExpr()
	t.delete(s.Table, userKey(u.ID), userCond(ue, u), ue, userChanged(u))
	self := c.UserID == u.ID
	ce := newExpr()
	t.delete(s.Table, emailKey(u.Email), ownClaimCond(ce, u, self), ce, ownClaimChanged(self))
	details := map[string]string{"email": u.Email, "role": string(u.Role), "logGeneration": strconv.FormatInt(u.LogGeneration, 10)}
	if u.License != nil {
		s.releaseLicense(t, u.AccountID, u.License.Tier)
		details["tier"] = string(u.License.Tier)
	}
	if !self {
		s.callerCheck(t, c)
	}
	s.addAudit(ctx, t, Audit{AccountID: u.AccountID, Actor: c.Email, Action: ActionUserDelete, Target: u.ID, Details: details, At: now})
	return s.commit(ctx, t, p, u, now)
}
