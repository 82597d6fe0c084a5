package licadmin

import (
	"context"
	"errors"
	"net/mail"
	"strings"
)

// ErrStale means an item changed between the read that planned a write and
// the write's condition; the write did nothing and the operation may be
// planned again from a fresh read.
var ErrStale = errors.New("item changed since it was read")

// MaxStaleRetries bounds how often an operation is re-planned after
// ErrStale before giving up with EUNAVAILABLE.
const MaxStaleRetries = 10

// RetryStale runs op until it returns something other than ErrStale, at
// most MaxStaleRetries times. Each run must read afresh.
func RetryStale(ctx context.Context, op func() error) error {
	for i := 0; i < MaxStaleRetries; i++ {
		if err := op(); !errors.Is(err, ErrStale) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return Errorf(EUNAVAILABLE, "the item is changing too often; retry shortly")
}

// RequireCaller returns EFORBIDDEN when the token's email belongs to no
// user: a valid token is not enough to reach an account.
func RequireCaller(c *Caller) error {
	if c == nil {
		return Errorf(EFORBIDDEN, "no user of any account has this token's email")
	}
	return nil
}

// RequireAdmin returns EFORBIDDEN unless c is an admin of its account.
func RequireAdmin(c *Caller) error {
	if err := RequireCaller(c); err != nil {
		return err
	}
	if !c.IsAdmin() {
		return Errorf(EFORBIDDEN, "only administrators of the account may do this")
	}
	return nil
}

// VisibleUser returns u when it belongs to c's account. A user of another
// account answers exactly like an unknown id (docs/api.md, rule 4).
func VisibleUser(c *Caller, u *User, id string) (*User, error) {
	if u == nil || u.AccountID != c.AccountID {
		return nil, Errorf(ENOTFOUND, "user %s not found", id)
	}
	return u, nil
}

// DefaultWebmailDomains are public email domains that anyone can use and no
// account can claim (docs/api.md, rule 5). Deployments replace the list with the
// PUBLIC_EMAIL_DOMAINS setting.
var DefaultWebmailDomains = []string{
	"gmail.com", "googlemail.com", "outlook.com", "outlook.fr", "hotmail.com", "hotmail.fr",
	"live.com", "live.fr", "msn.com", "yahoo.com", "yahoo.fr", "yahoo.ca", "icloud.com", "me.com",
	"aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.fr", "orange.fr", "wanadoo.fr",
	"free.fr", "laposte.net", "sfr.fr", "videotron.ca", "sympatico.ca", "yandex.com", "zoho.com",
}

// Webmail is a set of public webmail domains.
type Webmail map[string]bool

// NewWebmail returns the set of the given domains in their canonical form
// (EmailDomainKey), the form ParseEmail gives an address's domain.
func NewWebmail(domains []string) Webmail {
	w := Webmail{}
	for _, d := range domains {
		if d = EmailDomainKey(strings.ToLower(strings.TrimSpace(d))); d != "" {
			w[d] = true
		}
	}
	return w
}

// Has reports whether domain is public webmail.
func (w Webmail) Has(domain string) bool { return w[domain] }

// MaxEmailLength is the longest address accepted (RFC 5321's path limit).
const MaxEmailLength = 254

// ParseEmail validates a bare address (no display name) and returns it in
// its canonical form (NormalizeEmail) with its canonical domain, the form
// approved domains and the webmail list are keyed by. The domain must be a
// valid host name (ParseDomain). field names the input in the error.
func ParseEmail(field, s string) (email, domain string, err error) {
	email = NormalizeEmail(s)
	bad := Invalid(field, "invalid_email", "a valid email address like name@example.com is required")
	if email == "" || len(email) > MaxEmailLength {
		return "", "", bad
	}
	a, perr := mail.ParseAddress(email)
	if perr != nil || a.Address != email || a.Name != "" {
		return "", "", bad
	}
	at := strings.LastIndexByte(email, '@')
	domain = email[at+1:]
	if d, err := ParseDomain(domain); err != nil || d != domain {
		return "", "", bad
	}
	return email, domain, nil
}

// CallerLoader reads, in one round trip, the caller's claim and the users a
// request names.
type CallerLoader interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*Caller, []*User, error)
}

// Admin loads the caller and checks that it is an admin of its account
// (EFORBIDDEN): the prelude of every admin operation that names no user.
func Admin(ctx context.Context, l CallerLoader, email string) (*Caller, error) {
	c, _, err := l.LoadCaller(ctx, email)
	if err != nil {
		return nil, err
	}
	if err := RequireAdmin(c); err != nil {
		return nil, err
	}
	return c, nil
}

// AdminAndUsers loads the caller and the users ids in one read and checks
// that the caller is an admin (EFORBIDDEN) and that every user belongs to
// its account (ENOTFOUND, exactly as for an unknown id): the prelude of
// every admin operation on users.
func AdminAndUsers(ctx context.Context, l CallerLoader, email string, ids ...string) (*Caller, []*User, error) {
	c, us, err := l.LoadCaller(ctx, email, ids...)
	if err != nil {
		return nil, nil, err
	}
	if err := RequireAdmin(c); err != nil {
		return nil, nil, err
	}
	for i, id := range ids {
		if us[i], err = VisibleUser(c, us[i], id); err != nil {
			return nil, nil, err
		}
	}
	return c, us, nil
}

// AdminAndUser is AdminAndUsers for one user.
func AdminAndUser(ctx context.Context, l CallerLoader, email, id string) (*Caller, *User, error) {
	c, us, err := AdminAndUsers(ctx, l, email, id)
	if err != nil {
		return nil, nil, err
	}
	return c, us[0], nil
}
