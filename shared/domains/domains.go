// Package domains holds the rules of an account's email domains (docs/api.md,
// rule 5): an admin requests a domain and gets a TXT record value to publish;
// verification looks the record up in DNS and approves the domain, which
// then belongs to that account only; users can be added in approved domains
// (and public webmail ones, which nobody can claim).
package domains

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"time"

	"licenseadmin/shared/dnstxt"
	"licenseadmin/shared/licadmin"
)

// Store is what the domain rules need from storage.
type Store interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	Domain(ctx context.Context, accountID, domain string) (*licadmin.Domain, string, error)
	RequestDomain(ctx context.Context, c *licadmin.Caller, d *licadmin.Domain, now time.Time) (*licadmin.Domain, error)
	ApproveDomain(ctx context.Context, c *licadmin.Caller, accountID, domain string, d *licadmin.Domain, now time.Time) (*licadmin.Domain, error)
	DeleteDomain(ctx context.Context, c *licadmin.Caller, d *licadmin.Domain, holder bool, now time.Time) error
	ListDomains(ctx context.Context, accountID string, limit int, after []byte) ([]*licadmin.Domain, []byte, error)
}

// TXTResolver looks up a name's TXT records: none (and no error) when the
// name or its TXT records do not exist; dnstxt.Resolver is one.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Service applies the domain rules for portal callers.
type Service struct {
	Store   Store
	TXT     TXTResolver
	Now     licadmin.Clock
	Webmail licadmin.Webmail
	// Token returns the random part of a new TXT record value; crypto/rand
	// when nil.
	Token func() string
}

// Page limits (docs/api.md, "Representations").
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Parse returns the canonical form of a requested domain. It fails with
// EINVALIDDOMAIN for a name that is not a valid domain, and with
// EDOMAINCLAIMED for public webmail, which no account can claim (the
// contract's words for it, and its one code for a refused claim).
func (s *Service) Parse(raw string) (string, error) {
	d, err := licadmin.ParseDomain(raw)
	if err != nil {
		return "", err
	}
	if s.Webmail.Has(d) {
		return "", licadmin.Errorf(licadmin.EDOMAINCLAIMED, "%s is a public webmail domain: no account can claim it, and its users can be added without approval", d)
	}
	return d, nil
}

// notFound is the answer for a domain the caller's account has no entry
// for, whoever else has one (docs/api.md, rule 4).
func notFound(raw string) error {
	return licadmin.Errorf(licadmin.ENOTFOUND, "the domain %q is not one of this account's domains", raw)
}

// pathDomain parses a domain named in a path: one that cannot be valid is
// simply not found.
func (s *Service) pathDomain(raw string) (string, error) {
	d, err := licadmin.ParseDomain(raw)
	if err != nil {
		return "", notFound(raw)
	}
	return d, nil
}

// entry loads the caller, who must be an admin, its account's entry for
// name (nil when it has none) and the account whose claim holds name (""
// when none does).
func (s *Service) entry(ctx context.Context, r licadmin.Request, name string) (c *licadmin.Caller, d *licadmin.Domain, holder string, err error) {
	if c, err = licadmin.Admin(ctx, s.Store, r.Email); err != nil {
		return nil, nil, "", err
	}
	d, holder, err = s.Store.Domain(ctx, c.AccountID, name)
	return c, d, holder, err
}

// Request records the caller's account's request for a domain and returns
// its entry with the TXT record value to publish, and whether it is new.
// Requesting a domain the account already has answers its entry as it is
// (pending with the same value, or approved). It fails with
// EINVALIDDOMAIN and EDOMAINCLAIMED (public webmail, or approved for
// another account).
func (s *Service) Request(ctx context.Context, r licadmin.Request, raw string) (*licadmin.Domain, bool, error) {
	name, err := s.Parse(raw)
	if err != nil {
		return nil, false, err
	}
	var out *licadmin.Domain
	var created bool
	err = licadmin.RetryStale(ctx, func() error {
		c, d, holder, err := s.entry(ctx, r, name)
		switch {
		case err != nil:
			return err
		case d != nil:
			out = d
			return nil
		case holder != "" && holder != c.AccountID:
			return licadmin.DomainClaimed(name)
		}
		txt := licadmin.TXTRecordPrefix + s.token()
		d = &licadmin.Domain{Domain: name, Status: licadmin.DomainPending, TXTRecord: &txt, CreatedAt: s.Now.Read(), AccountID: c.AccountID}
		out, err = s.Store.RequestDomain(ctx, c, d, d.CreatedAt)
		created = err == nil
		return err
	})
	return out, created, err
}

// Verify looks up the TXT records of a pending domain of the caller's
// account and approves it when one of them is the domain's TXT record
// value. An approved domain answers as it is. It fails with ENOTFOUND,
// EDOMAINUNVERIFIED (DNS answered, without the record), EUNAVAILABLE (the
// lookup failed or timed out: retry) and EDOMAINCLAIMED (another account
// had it approved first).
func (s *Service) Verify(ctx context.Context, r licadmin.Request, raw string) (*licadmin.Domain, error) {
	name, err := s.pathDomain(raw)
	if err != nil {
		return nil, err
	}
	var out *licadmin.Domain
	verified := "" // the TXT value found in DNS, looked up once
	err = licadmin.RetryStale(ctx, func() error {
		c, d, holder, err := s.entry(ctx, r, name)
		switch {
		case err != nil:
			return err
		case d == nil:
			return notFound(raw)
		case d.Status == licadmin.DomainApproved:
			out = d
			return nil
		case holder != "" && holder != c.AccountID:
			return licadmin.DomainClaimed(name)
		}
		want := strings.TrimSpace(derefString(d.TXTRecord))
		if want == "" {
			return licadmin.Errorf(licadmin.EDOMAINUNVERIFIED, "the domain %s has no TXT record value to verify; delete it and request it again", name)
		}
		if verified != want {
			if err := s.lookup(ctx, name, want); err != nil {
				return err
			}
			verified = want
		}
		out, err = s.Store.ApproveDomain(ctx, c, c.AccountID, name, d, s.Now.Read())
		return err
	})
	return out, err
}

// lookup fails with EDOMAINUNVERIFIED unless a TXT record of name is want.
func (s *Service) lookup(ctx context.Context, name, want string) error {
	records, err := s.TXT.LookupTXT(ctx, name)
	if err != nil {
		// The lookup itself failed: nothing is known of the record yet, so
		// the answer is a retryable 503, never remembered under an
		// Idempotency-Key, not a verdict on the domain.
		if errors.Is(err, dnstxt.ErrTimeout) {
			return licadmin.Errorf(licadmin.EUNAVAILABLE, "the DNS lookup of %s timed out; retry in a few minutes", name)
		}
		return licadmin.Errorf(licadmin.EUNAVAILABLE, "the DNS lookup of %s failed; retry in a few minutes", name)
	}
	for _, rec := range records {
		if strings.TrimSpace(rec) == want {
			return nil
		}
	}
	return licadmin.Errorf(licadmin.EDOMAINUNVERIFIED,
		"no TXT record of %s has the value %s; publish it at your DNS provider and retry once it is visible (DNS changes can take a while)", name, want)
}

// Delete removes a domain of the caller's account and, when the account
// holds it, the domain's approval: existing users stay, new users of the
// domain are refused. It fails with ENOTFOUND.
func (s *Service) Delete(ctx context.Context, r licadmin.Request, raw string) error {
	name, err := s.pathDomain(raw)
	if err != nil {
		return err
	}
	return licadmin.RetryStale(ctx, func() error {
		c, d, holder, err := s.entry(ctx, r, name)
		if err != nil {
			return err
		}
		if d == nil {
			return notFound(raw)
		}
		return s.Store.DeleteDomain(ctx, c, d, holder == c.AccountID, s.Now.Read())
	})
}

// ListQuery selects a page of domains.
type ListQuery struct {
	Limit int
	// After is the position the previous page ended at (already verified
	// by the HTTP layer's cursor codec), nil for the first page.
	After []byte
}

// List returns a page of the caller's account's domains in name order and
// the position after it (nil at the end).
func (s *Service) List(ctx context.Context, r licadmin.Request, q ListQuery) ([]*licadmin.Domain, []byte, error) {
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return nil, nil, licadmin.Invalid("limit", "out_of_range", "limit must be from 1 to 200")
	}
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, nil, err
	}
	return s.Store.ListDomains(ctx, c.AccountID, q.Limit, q.After)
}

func (s *Service) token() string {
	if s.Token != nil {
		return s.Token()
	}
	b := make([]byte, 20)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
