package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"licenseadmin/shared/licadmin"
)

// CreateAccount writes a new account with an empty pool and its first
// admin, in one transaction, and returns the ids of the account and its
// admin. When domain is not empty (not a public webmail domain) it is
// approved for the account; it fails with EDOMAINCLAIMED when another
// account holds it, and EEMAILTAKEN when the admin's email is taken.
//
// The same account again is the account as created: when the admin's
// email already names the first admin of an account of the same name, its
// ids are returned (the first creation's name, language and domain stay),
// so that an operator who lost the answer can send the request again.
func (s *Store) CreateAccount(ctx context.Context, accountID, name string, admin *licadmin.User, domain string, now time.Time) (string, string, error) {
	t := &txn{}
	acct := accountKey(accountID)
	acct["name"] = str(name)
	acct["adminCount"] = num(1)
	acct["firstAdmin"] = str(admin.ID)
	acct["createdAt"] = timestamp(now)
	t.putNew(s.Table, acct, func(Item) error {
		return fmt.Errorf("account id %s collides with an existing account", accountID)
	})
	pool := poolKey(accountID)
	for _, tier := range licadmin.Tiers {
		pool[purchasedAttr(tier)] = num(0)
		pool[assignedAttr(tier)] = num(0)
		pool[availableAttr(tier)] = num(0)
		pool[alertAttr(tier)] = num(0)
	}
	t.put(s.Table, pool, "", nil, nil)
	if domain != "" {
		s.putApprovedDomain(t, accountID, domain, now)
	}
	s.putNewUser(t, admin)
	s.addAudit(ctx, t, Audit{AccountID: accountID, Actor: licadmin.OperatorActor, Action: ActionAccountCreate, Target: accountID,
		Details: map[string]string{"name": name, "admin": admin.Email, "domain": domain}, At: now})
	err := s.transact(ctx, t)
	if err == nil {
		return accountID, admin.ID, nil
	}
	switch licadmin.ErrorCode(err) {
	case licadmin.EEMAILTAKEN, licadmin.EDOMAINCLAIMED:
		// Both claims of an account created before fail; which one is
		// answered depends on the order of the items.
		if id, adminID, ok, rerr := s.createdBefore(ctx, name, admin.Email); rerr != nil {
			return "", "", rerr
		} else if ok {
			return id, adminID, nil
		}
	}
	return "", "", err
}

// createdBefore reports the account named name whose first admin still
// holds email, if there is one.
func (s *Store) createdBefore(ctx context.Context, name, email string) (accountID, adminID string, ok bool, err error) {
	claim, err := s.getItem(ctx, emailKey(email))
	if err != nil || claim == nil {
		return "", "", false, err
	}
	accountID, adminID = getS(claim, "accountId"), getS(claim, "userId")
	acct, err := s.getItem(ctx, accountKey(accountID))
	if err != nil || acct == nil {
		return "", "", false, err
	}
	if getS(acct, "name") != name || getS(acct, "firstAdmin") != adminID {
		return "", "", false, nil
	}
	return accountID, adminID, true, nil
}

// putApprovedDomain appends the global domain claim (one account per
// domain, rule 5 of docs/api.md) and the account's own domain entry.
func (s *Store) putApprovedDomain(t *txn, accountID, domain string, now time.Time) {
	s.putDomainClaim(t, accountID, domain, now)
	own := accountDomainKey(accountID, domain)
	own["domain"] = str(domain)
	own["status"] = str(licadmin.DomainApproved)
	own["approvedAt"] = timestamp(now)
	t.put(s.Table, own, "", nil, nil)
}

var errOrderDone = errors.New("order already applied")

// AddLicenses adds quantity purchased licenses of tier to an account's pool
// for a billing order, once per order id: the same order again changes
// nothing and returns the pool; the same id with another tier or quantity
// fails with EORDERCONFLICT. An unknown account fails with ENOTFOUND.
func (s *Store) AddLicenses(ctx context.Context, accountID string, tier licadmin.Tier, quantity int64, orderID string, now time.Time) (*licadmin.Pool, error) {
	t := &txn{}
	order := orderKey(accountID, orderID)
	order["tier"] = str(string(tier))
	order["quantity"] = num(quantity)
	order["at"] = timestamp(now)
	t.putNew(s.Table, order, func(old Item) error {
		if getS(old, "tier") == string(tier) && getN(old, "quantity") == quantity {
			return errOrderDone
		}
		return licadmin.Errorf(licadmin.EORDERCONFLICT, "order %s was already applied with %d %s licenses", orderID, getN(old, "quantity"), getS(old, "tier"))
	})
	pe := newExpr()
	q := pe.v(num(quantity))
	t.update(s.Table, poolKey(accountID),
		fmt.Sprintf("ADD %s %s, %s %s", pe.n(purchasedAttr(tier)), q, pe.n(availableAttr(tier)), q),
		fmt.Sprintf("attribute_exists(%s)", pe.n(attrPK)), pe,
		func(Item) error { return licadmin.Errorf(licadmin.ENOTFOUND, "account %s not found", accountID) })
	s.addAudit(ctx, t, Audit{AccountID: accountID, Actor: licadmin.OperatorActor, Action: ActionLicensesAdd, Target: string(tier),
		Details: map[string]string{"quantity": strconv.FormatInt(quantity, 10), "orderId": orderID}, At: now})
	if err := s.transact(ctx, t); err != nil && !errors.Is(err, errOrderDone) {
		return nil, err
	}
	return s.Pool(ctx, accountID)
}
