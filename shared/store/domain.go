package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/licadmin"
)

// Audit actions of domain changes.
const (
	ActionDomainRequest = "domain.request"
	ActionDomainApprove = "domain.approve"
	ActionDomainDelete  = "domain.delete"
)

// A domain has two items (keys.go): the account's own entry, which records
// the request, its TXT record value and its status, and, once approved, the
// global claim that makes it belong to one account (docs/api.md, rule 5). Adding a
// user checks the claim in its transaction; approving writes the claim with
// a condition that no other account holds it.

// Domain returns the account's entry for domain (nil when it has none) and
// the account that holds the domain's global claim ("" when none does), in
// one consistent read.
func (s *Store) Domain(ctx context.Context, accountID, domain string) (*licadmin.Domain, string, error) {
	items, err := s.batchGet(ctx, []key{accountDomainKey(accountID, domain), domainKey(domain)})
	if err != nil {
		return nil, "", fmt.Errorf("get domain %s of %s: %w", domain, accountID, err)
	}
	var d *licadmin.Domain
	var holder string
	for _, it := range items {
		if getS(it, attrSK) == skDomain {
			holder = getS(it, "accountId")
		} else {
			d = decodeDomain(accountID, it)
		}
	}
	return d, holder, nil
}

// decodeDomain decodes an account's domain entry. Entries written at
// account creation have no createdAt: their approval is their creation.
func decodeDomain(accountID string, it Item) *licadmin.Domain {
	d := &licadmin.Domain{
		Domain:    getS(it, "domain"),
		Status:    getS(it, "status"),
		TXTRecord: getOptS(it, "txtRecord"),
		CreatedAt: getTime(it, "createdAt"),
		AccountID: accountID,
	}
	if _, ok := it["approvedAt"]; ok {
		at := getTime(it, "approvedAt")
		d.ApprovedAt = &at
		if d.CreatedAt.IsZero() {
			d.CreatedAt = at
		}
	}
	return d
}

// RequestDomain records c's request for d (a new pending entry with its TXT
// record value). It fails with EDOMAINCLAIMED when another account holds
// the domain, and licadmin.ErrStale when the account already has an entry
// for it (a concurrent request: read it again).
func (s *Store) RequestDomain(ctx context.Context, c *licadmin.Caller, d *licadmin.Domain, now time.Time) (*licadmin.Domain, error) {
	t, p := s.begin(ctx, now)
	ce := newExpr()
	t.check(s.Table, domainKey(d.Domain),
		fmt.Sprintf("attribute_not_exists(%s) OR %s = %s", ce.n(attrPK), ce.n("accountId"), ce.v(str(c.AccountID))), ce,
		claimedBy(d.Domain))
	it := accountDomainKey(c.AccountID, d.Domain)
	it["domain"] = str(d.Domain)
	it["status"] = str(d.Status)
	it["txtRecord"] = str(aws.ToString(d.TXTRecord))
	it["createdAt"] = timestamp(d.CreatedAt)
	t.putNew(s.Table, it, func(Item) error { return licadmin.ErrStale })
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionDomainRequest, Target: d.Domain,
		Details: map[string]string{"txtRecord": aws.ToString(d.TXTRecord)}, At: now})
	if err := s.commit(ctx, t, p, d, now); err != nil {
		return nil, err
	}
	return d, nil
}

// putDomainClaim appends the global claim of domain, approved for
// accountID at now, on the condition that no other account holds it
// (EDOMAINCLAIMED): one account per domain (docs/api.md, rule 5).
func (s *Store) putDomainClaim(t *txn, accountID, domain string, now time.Time) {
	claim := domainKey(domain)
	claim["accountId"] = str(accountID)
	claim["status"] = str(licadmin.DomainApproved)
	claim["approvedAt"] = timestamp(now)
	e := newExpr()
	t.put(s.Table, claim, fmt.Sprintf("attribute_not_exists(%s) OR %s = %s", e.n(attrPK), e.n("accountId"), e.v(str(accountID))), e,
		claimedBy(domain))
}

// checkDomainApproved appends the condition that domain's claim is
// approved for accountID, which holds a new or changed email address to
// the account's domains; onFail answers its failure.
func (s *Store) checkDomainApproved(t *txn, accountID, domain string, onFail func(Item) error) {
	e := newExpr()
	t.check(s.Table, domainKey(domain),
		fmt.Sprintf("%s = %s AND %s = %s", e.n("accountId"), e.v(str(accountID)), e.n("status"), e.v(str(licadmin.DomainApproved))), e,
		onFail)
}

func domainNotApproved(domain string) error {
	return licadmin.Errorf(licadmin.EDOMAINNOTAPPROVED, "the domain %s is not approved for this account; request and verify it first", domain)
}

func claimedBy(domain string) func(Item) error {
	return func(Item) error {
		return licadmin.DomainClaimed(domain)
	}
}

// ApproveDomain approves a domain for an account: it writes the global
// claim, on the condition that no other account holds it (EDOMAINCLAIMED),
// and marks the account's entry approved, keeping its TXT record value.
//
// d is the entry as read, nil when the account has none (an operator may
// approve a domain that was never requested). With a caller (the portal's
// DNS verification) the entry must still have the TXT record value that was
// verified: it fails with ENOTFOUND when the entry is gone and
// licadmin.ErrStale when it changed. Without a caller (an operator) the
// account must exist (ENOTFOUND). It returns the approved entry.
func (s *Store) ApproveDomain(ctx context.Context, c *licadmin.Caller, accountID, domain string, d *licadmin.Domain, now time.Time) (*licadmin.Domain, error) {
	n := &licadmin.Domain{Domain: domain, Status: licadmin.DomainApproved, CreatedAt: now, ApprovedAt: &now, AccountID: accountID}
	if d != nil {
		n.TXTRecord, n.CreatedAt = d.TXTRecord, d.CreatedAt
	}
	t, p := s.begin(ctx, now)

	s.putDomainClaim(t, accountID, domain, now)

	e := newExpr()
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = if_not_exists(%s, %s)",
		e.n("domain"), e.v(str(domain)), e.n("status"), e.v(str(licadmin.DomainApproved)),
		e.n("approvedAt"), e.v(timestamp(now)), e.n("createdAt"), e.n("createdAt"), e.v(timestamp(n.CreatedAt)))
	var cond string
	var onFail func(Item) error
	if c != nil {
		cond = fmt.Sprintf("%s = %s", e.n("txtRecord"), e.v(str(aws.ToString(d.TXTRecord))))
		onFail = func(old Item) error {
			if old == nil {
				return licadmin.Errorf(licadmin.ENOTFOUND, "the domain %s has no request in this account", domain)
			}
			return licadmin.ErrStale
		}
	}
	t.update(s.Table, accountDomainKey(accountID, domain), update, cond, e, onFail)

	actor, method := licadmin.OperatorActor, "operator"
	if c != nil {
		s.callerCheck(t, c)
		actor, method = c.Email, "dns"
	} else {
		ae := newExpr()
		t.check(s.Table, accountKey(accountID), fmt.Sprintf("attribute_exists(%s)", ae.n(attrPK)), ae,
			func(Item) error { return licadmin.Errorf(licadmin.ENOTFOUND, "account %s not found", accountID) })
	}
	s.addAudit(ctx, t, Audit{AccountID: accountID, Actor: actor, Action: ActionDomainApprove, Target: domain,
		Details: map[string]string{"method": method}, At: now})
	if err := s.commit(ctx, t, p, n, now); err != nil {
		return nil, err
	}
	return n, nil
}

// DeleteDomain deletes c's entry for d (as read) and, when the account
// holds it (holder), the global claim: users of the domain stay, new ones
// are refused. It fails with ENOTFOUND when the entry is gone and
// licadmin.ErrStale when it or the claim changed since the read.
func (s *Store) DeleteDomain(ctx context.Context, c *licadmin.Caller, d *licadmin.Domain, holder bool, now time.Time) error {
	t, p := s.begin(ctx, now)
	e := newExpr()
	// The status read decides whether the claim goes too: a verification
	// that approved the domain meanwhile must not leave its claim behind.
	t.delete(s.Table, accountDomainKey(c.AccountID, d.Domain), fmt.Sprintf("%s = %s", e.n("status"), e.v(str(d.Status))), e,
		func(old Item) error {
			if old == nil {
				return licadmin.Errorf(licadmin.ENOTFOUND, "the domain %s is not one of this account's domains", d.Domain)
			}
			return licadmin.ErrStale
		})
	if holder {
		ce := newExpr()
		t.delete(s.Table, domainKey(d.Domain), fmt.Sprintf("%s = %s", ce.n("accountId"), ce.v(str(c.AccountID))), ce,
			func(Item) error { return licadmin.ErrStale })
	}
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionDomainDelete, Target: d.Domain,
		Details: map[string]string{"status": d.Status, "claimReleased": fmt.Sprint(holder)}, At: now})
	return s.commit(ctx, t, p, d, now)
}

// ListDomains returns up to limit of an account's domains in name order,
// starting after the position after (nil for the first page), and the
// position after the last one returned, nil when there are no more.
// Positions are opaque to callers; one of another account is refused.
func (s *Store) ListDomains(ctx context.Context, accountID string, limit int, after []byte) ([]*licadmin.Domain, []byte, error) {
	pk := accountPK(accountID)
	var from Item
	if len(after) > 0 {
		var k [2]string
		if err := json.Unmarshal(after, &k); err != nil || k[0] != pk || len(k[1]) <= len(skAccountDomainPrefix) || k[1][:len(skAccountDomainPrefix)] != skAccountDomainPrefix {
			return nil, nil, licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
		}
		from = mkKey(k[0], k[1])
	}
	e := newExpr()
	out, err := s.DB.Query(ctx, &dynamodb.QueryInput{
		TableName: &s.Table,
		KeyConditionExpression: aws.String(fmt.Sprintf("%s = %s AND begins_with(%s, %s)",
			e.n(attrPK), e.v(str(pk)), e.n(attrSK), e.v(str(skAccountDomainPrefix)))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ExclusiveStartKey:         from,
		// One more than a page tells whether a next page exists.
		Limit:          aws.Int32(int32(limit + 1)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("query domains of %s: %w", accountID, err)
	}
	var ds []*licadmin.Domain
	for i, it := range out.Items {
		if i == limit {
			last := out.Items[i-1]
			pos, _ := json.Marshal([2]string{getS(last, attrPK), getS(last, attrSK)})
			return ds, pos, nil
		}
		ds = append(ds, decodeDomain(accountID, it))
	}
	return ds, nil, nil
}
