// Package licadmin holds License Admin's domain: the types every layer speaks
// (users, tiers, pools, callers) and the application error codes that the
// HTTP layer maps to statuses in one place. It imports nothing of AWS so that
// rules can be read and tested without a network.
package licadmin

import (
	"context"
	"strings"
	"time"
)

// Tier is a license level. Tiers are ordered eco < advanced < pro; the order
// matters for pro-only settings and for reporting, never for pricing here.
type Tier string

// The three tiers that an account's pool holds.
const (
	Eco      Tier = "eco"
	Advanced Tier = "advanced"
	Pro      Tier = "pro"
)

// Tiers lists every tier in ascending order, the order summaries use.
var Tiers = []Tier{Eco, Advanced, Pro}

// ParseTier returns the tier named s, or an EINVALID error naming field so
// that a client learns which input was wrong.
func ParseTier(field, s string) (Tier, error) {
	switch t := Tier(s); t {
	case Eco, Advanced, Pro:
		return t, nil
	}
	return "", Invalid(field, "unknown_tier", "tier must be one of eco, advanced, pro")
}

// Role is what a user may do in its account: admins manage users and
// licenses, users read only their own data.
type Role string

// The roles a user can have.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// Status tells whether a user has activated its account from the emailed link.
type Status string

// The statuses a user can be in.
const (
	StatusPending Status = "pending"
	StatusActive  Status = "active"
)

// License is the license a user holds; a user holds at most one (docs/api.md, rule 2).
type License struct {
	Tier       Tier      `json:"tier"`
	AssignedAt time.Time `json:"assignedAt"`
}

// Security holds a user's security settings. ProtectedReplies other than
// "none" needs a Pro license.
type Security struct {
	Portal2FA        bool   `json:"portal2fa"`
	ProtectedReplies string `json:"protectedReplies"`
}

// User is one person of an account, in the representation clients see.
// AccountID, Version and LogGeneration are kept server-side: the account is
// never exposed (ids are resolved within the caller's account), Version backs
// the ETag, LogGeneration keys the user's logs (docs/api.md, rule 6).
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	FirstName string    `json:"firstName"`
	LastName  string    `json:"lastName"`
	Language  string    `json:"language"`
	Role      Role      `json:"role"`
	Status    Status    `json:"status"`
	License   *License  `json:"license"`
	Mobile    *string   `json:"mobile"`
	TimeZone  *string   `json:"timeZone"`
	Security  Security  `json:"security"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	AccountID     string `json:"-"`
	Version       int64  `json:"-"`
	LogGeneration int64  `json:"-"`
	// LogSince is when the current log generation began (zero before the
	// user's first license removal or transfer): ingestion drops an event
	// timed or queued before it, which belongs to the ended log, so that
	// a redelivery of an event recorded before the change never counts
	// twice or shows in the new log.
	LogSince time.Time `json:"-"`
}

// EndLog starts a new log generation at now: the old one is unreadable at
// once (docs/api.md, rule 6) and purged.
func (u *User) EndLog(now time.Time) {
	u.LogGeneration++
	u.LogSince = now
}

// TierPool is one tier of an account's pool. Available is always
// Purchased - Assigned and never negative (docs/api.md, rule 1).
type TierPool struct {
	Tier           Tier  `json:"tier"`
	Purchased      int64 `json:"purchased"`
	Assigned       int64 `json:"assigned"`
	Available      int64 `json:"available"`
	AlertThreshold int64 `json:"alertThreshold"`
}

// Pool is an account's license pool, one entry per tier in Tiers order.
type Pool struct {
	Tiers []TierPool `json:"tiers"`
}

// Tier returns the entry for t; a pool always has all three.
func (p *Pool) Tier(t Tier) TierPool {
	for _, tp := range p.Tiers {
		if tp.Tier == t {
			return tp
		}
	}
	return TierPool{Tier: t}
}

// Caller is the authenticated person behind a request: the email comes from
// the verified token, the account and role from the table, never from input.
type Caller struct {
	Email     string
	UserID    string
	AccountID string
	Role      Role
}

// IsAdmin reports whether the caller may use admin routes.
func (c *Caller) IsAdmin() bool { return c != nil && c.Role == RoleAdmin }

// Request describes who asks and from where; every state change records it
// in its audit entry (docs/api.md, rule 8).
type Request struct {
	// Email is the verified token's email claim, lower-cased.
	Email string
	// RequestID is API Gateway's request id (or the Lambda request id).
	RequestID string
	// SourceIP is the client address as API Gateway saw it.
	SourceIP string
}

// Actor names the caller in audit records for operator paths that have no
// token: operators act with IAM credentials.
const OperatorActor = "operator"

// NormalizeEmail returns the one canonical form of an address, the form
// in which emails are stored, claimed and compared everywhere (docs/api.md,
// rule 3): trimmed, lower-cased, its domain in the ASCII (punycode) form that
// ParseDomain gives, so that jane@exämple.com and jane@xn--exmple-cua.com
// are one mailbox. A domain that does not parse is only lower-cased
// (ParseEmail refuses it).
func NormalizeEmail(s string) string {
	e := strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(e, '@')
	if at < 0 {
		return e
	}
	if d, err := ParseDomain(e[at+1:]); err == nil {
		return e[:at+1] + d
	}
	return e
}

// Clock returns the current time; services take one so tests control time.
type Clock func() time.Time

// WorkDeadline is when a background job that continues in a fresh
// invocation (an import, a bulk reminder) stops taking work: margin before
// the invocation's deadline (ctx's), and at most maxRun after now when
// maxRun is not zero (tests force continuations with it); far off when
// neither applies.
func WorkDeadline(ctx context.Context, now time.Time, margin, maxRun time.Duration) time.Time {
	end := now.Add(100 * 365 * 24 * time.Hour)
	if d, ok := ctx.Deadline(); ok {
		end = d.Add(-margin)
	}
	if maxRun > 0 {
		if budget := now.Add(maxRun); budget.Before(end) {
			end = budget
		}
	}
	return end
}

// Read returns the clock's time in UTC, the form every stored time takes.
// A nil Clock reads the system clock, so that a service built without one
// (a test, a tool) still works.
func (c Clock) Read() time.Time {
	if c != nil {
		return c().UTC()
	}
	return time.Now().UTC()
}

// Sleep waits d, or until ctx ends (its error): the wait between retries
// of the store and the email sender.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IDSource returns a new unique, opaque id.
type IDSource func() string

type requestKey struct{}

// WithRequest returns a context that carries r, for layers (store audit
// records) that need the request's metadata without threading it through
// every signature.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request carried by ctx, or a zero Request.
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// UserFilter narrows a user listing. Zero values match everything.
type UserFilter struct {
	// License is "", "none" or a tier.
	License string
	// Status is "", "pending" or "active".
	Status string
	// Search, when not empty, keeps the users whose email, first name or
	// last name starts with it; it is a SearchKey, folded already.
	Search string
}
