package licadmin

import (
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Domain statuses: a domain is pending from its request until a DNS TXT
// record (or an operator) proves the account controls it.
const (
	DomainPending  = "pending"
	DomainApproved = "approved"
)

// DomainClaimed is the answer to a request for a domain that another
// account holds: one account per domain (docs/api.md, rule 5).
func DomainClaimed(domain string) error {
	return Errorf(EDOMAINCLAIMED, "the domain %s is already approved for another account", domain)
}

// TXTRecordPrefix starts the value of the TXT record that proves control of
// a domain: "license-admin-verification=<random>".
const TXTRecordPrefix = "license-admin-verification="

// Domain is an email domain of an account, in the representation clients
// see. Users of an approved domain can be added to the account (docs/api.md,
// rule 5). TXTRecord is the value to publish as a TXT record of the domain; it is
// null for domains that an operator approved without DNS (the first admin's
// domain at account creation, `domains approve`).
type Domain struct {
	Domain     string     `json:"domain"`
	Status     string     `json:"status"`
	TXTRecord  *string    `json:"txtRecord"`
	CreatedAt  time.Time  `json:"createdAt"`
	ApprovedAt *time.Time `json:"approvedAt"`

	AccountID string `json:"-"`
}

// MaxDomainLength is the longest domain name accepted, in its ASCII form
// (RFC 1035 allows 253 characters without the trailing dot).
const MaxDomainLength = 253

// ParseDomain returns the canonical form of a domain name: trimmed,
// lower-cased, without a trailing dot, internationalised labels in their
// punycode (A-label) form. It fails with EINVALIDDOMAIN for anything that
// is not a registrable-looking host name: a single label, an IP address,
// labels outside letters, digits and inner hyphens, or over DNS lengths.
func ParseDomain(s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	bad := Errorf(EINVALIDDOMAIN, "%q is not a valid domain name; use a name such as example.com", strings.TrimSpace(s))
	if d == "" || len(d) > 4*MaxDomainLength {
		return "", bad
	}
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil || ascii == "" || len(ascii) > MaxDomainLength {
		return "", bad
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", bad
	}
	for _, l := range labels {
		if !validLabel(l) {
			return "", bad
		}
	}
	// A top-level domain is never all digits: that is an IPv4 address.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", bad
	}
	return ascii, nil
}

// validLabel reports whether l is an LDH label: 1 to 63 letters, digits and
// hyphens, not starting or ending with a hyphen.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// EmailDomainKey returns the form under which an email's domain is approved:
// its canonical ParseDomain form, or the domain as given when it does not
// parse (it then matches no approved domain).
func EmailDomainKey(domain string) string {
	if d, err := ParseDomain(domain); err == nil {
		return d
	}
	return domain
}
