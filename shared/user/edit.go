package user

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	// The time zone database is compiled in: Lambda's provided.al2023 has
	// no zoneinfo to validate time zone names against.
	_ "time/tzdata"

	"licenseadmin/shared/licadmin"
)

// Patch is the input of Update: every field is optional, and only those
// sent change. Mobile and TimeZone accept null, which clears them; the
// other fields refuse it.
type Patch struct {
	Email     licadmin.Optional[string]        `json:"email"`
	FirstName licadmin.Optional[string]        `json:"firstName"`
	LastName  licadmin.Optional[string]        `json:"lastName"`
	Language  licadmin.Optional[string]        `json:"language"`
	Role      licadmin.Optional[string]        `json:"role"`
	Mobile    licadmin.Optional[string]        `json:"mobile"`
	TimeZone  licadmin.Optional[string]        `json:"timeZone"`
	Security  licadmin.Optional[SecurityPatch] `json:"security"`
}

// SecurityPatch changes some of a user's security settings.
type SecurityPatch struct {
	Portal2FA        licadmin.Optional[bool]   `json:"portal2fa"`
	ProtectedReplies licadmin.Optional[string] `json:"protectedReplies"`
}

// ProtectedReplies values; the last two need a Pro license.
var ProtectedReplies = []string{"none", "sms", "microsoft"}

// Precondition is a PATCH's If-Match: the versions (entity tags) the client
// accepts, or Any for "*".
type Precondition struct {
	Any      bool
	Versions []int64
}

func (p *Precondition) matches(version int64) bool {
	if p.Any {
		return true
	}
	for _, v := range p.Versions {
		if v == version {
			return true
		}
	}
	return false
}

// e164 is an international phone number: "+", a country code that does not
// start with 0, at most 15 digits in all (ITU-T E.164).
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// NormalizeMobile returns a mobile number in E.164 form, dropping the
// spaces, dots, hyphens and parentheses people type, or false when it is
// not an international number with its country code.
func NormalizeMobile(s string) (string, bool) {
	m := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '.', '-', '(', ')', '\u00a0':
			return -1
		}
		return r
	}, s)
	return m, e164.MatchString(m)
}

// ValidTimeZone reports whether name is an IANA time zone name.
func ValidTimeZone(name string) bool {
	if name == "" || name == "Local" || len(name) > 64 {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// edit is a validated Patch.
type edit struct {
	p      Patch
	email  string
	domain string
	mobile string
}

func validatePatch(p Patch) (*edit, []licadmin.FieldError) {
	ed := &edit{p: p}
	var fields []licadmin.FieldError
	bad := func(field, code string) { fields = append(fields, licadmin.FieldError{Field: field, Code: code}) }
	notNull := func(field string, set, null bool) bool {
		if set && null {
			bad(field, "not_nullable")
		}
		return set && !null
	}
	if notNull("email", p.Email.Set, p.Email.Null) {
		email, domain, err := licadmin.ParseEmail("email", p.Email.Value)
		if err != nil {
			bad("email", "invalid_email")
		}
		ed.email, ed.domain = email, domain
	}
	for _, f := range []struct {
		name string
		v    licadmin.Optional[string]
	}{{"firstName", p.FirstName}, {"lastName", p.LastName}} {
		if notNull(f.name, f.v.Set, f.v.Null) {
			v := strings.TrimSpace(f.v.Value)
			switch {
			case v == "":
				bad(f.name, "required")
			case utf8.RuneCountInString(v) > MaxNameLength || strings.ContainsFunc(v, isControl):
				bad(f.name, "invalid")
			}
		}
	}
	if notNull("language", p.Language.Set, p.Language.Null) && p.Language.Value != "fr" && p.Language.Value != "en" {
		bad("language", "unknown_language")
	}
	if notNull("role", p.Role.Set, p.Role.Null) && p.Role.Value != string(licadmin.RoleUser) && p.Role.Value != string(licadmin.RoleAdmin) {
		bad("role", "unknown_role")
	}
	if p.Mobile.Has() {
		m, ok := NormalizeMobile(p.Mobile.Value)
		if !ok {
			bad("mobile", "invalid_mobile")
		}
		ed.mobile = m
	}
	if p.TimeZone.Has() && !ValidTimeZone(p.TimeZone.Value) {
		bad("timeZone", "unknown_time_zone")
	}
	if notNull("security", p.Security.Set, p.Security.Null) {
		sp := p.Security.Value
		notNull("security.portal2fa", sp.Portal2FA.Set, sp.Portal2FA.Null)
		if notNull("security.protectedReplies", sp.ProtectedReplies.Set, sp.ProtectedReplies.Null) {
			switch sp.ProtectedReplies.Value {
			case "none", "sms", "microsoft":
			default:
				bad("security.protectedReplies", "unknown_value")
			}
		}
	}
	return ed, fields
}

// apply returns u with the edit applied.
func (ed *edit) apply(u *licadmin.User) *licadmin.User {
	n := *u
	p := ed.p
	if p.Email.Has() {
		n.Email = ed.email
	}
	if p.FirstName.Has() {
		n.FirstName = strings.TrimSpace(p.FirstName.Value)
	}
	if p.LastName.Has() {
		n.LastName = strings.TrimSpace(p.LastName.Value)
	}
	if p.Language.Has() {
		n.Language = p.Language.Value
	}
	if p.Role.Has() {
		n.Role = licadmin.Role(p.Role.Value)
	}
	switch {
	case p.Mobile.Null:
		n.Mobile = nil
	case p.Mobile.Set:
		n.Mobile = &ed.mobile
	}
	switch {
	case p.TimeZone.Null:
		n.TimeZone = nil
	case p.TimeZone.Set:
		tz := p.TimeZone.Value
		n.TimeZone = &tz
	}
	if p.Security.Has() {
		if sp := p.Security.Value; sp.Portal2FA.Has() {
			n.Security.Portal2FA = sp.Portal2FA.Value
		}
		if sp := p.Security.Value; sp.ProtectedReplies.Has() {
			n.Security.ProtectedReplies = sp.ProtectedReplies.Value
		}
	}
	return &n
}

func sameUser(a, b *licadmin.User) bool {
	eq := func(x, y *string) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	return a.Email == b.Email && a.FirstName == b.FirstName && a.LastName == b.LastName && a.Language == b.Language &&
		a.Role == b.Role && eq(a.Mobile, b.Mobile) && eq(a.TimeZone, b.TimeZone) && a.Security == b.Security
}

// Update edits a user of the caller's account and returns it as committed.
// An edit that changes nothing answers the user as it is and writes
// nothing. It fails with EINVALID (naming every bad field), ENOTFOUND,
// EPRECONDITION (If-Match names another version, or the user changed before
// the write), EREQUIRESPRO (protected replies by SMS or Microsoft for a user
// without a Pro license), EEMAILTAKEN, EDOMAINNOTAPPROVED (the new email's
// domain) and ELASTADMIN (demoting the account's last admin).
func (s *Service) Update(ctx context.Context, r licadmin.Request, userID string, p Patch, ifMatch *Precondition) (*licadmin.User, error) {
	ed, fields := validatePatch(p)
	if len(fields) > 0 {
		return nil, &licadmin.Error{Code: licadmin.EINVALID, Message: "some fields are invalid; see errors", Fields: fields}
	}
	var out *licadmin.User
	err := licadmin.RetryStale(ctx, func() error {
		c, u, err := licadmin.AdminAndUser(ctx, s.Store, r.Email, userID)
		if err != nil {
			return err
		}
		// The write is conditional on the version matched here, so a
		// change between this read and the write is refused too.
		if ifMatch != nil && !ifMatch.matches(u.Version) {
			return licadmin.Errorf(licadmin.EPRECONDITION, "the user changed since you read it (ETag \"%d\"); read it again and retry", u.Version)
		}
		n := ed.apply(u)
		if sameUser(u, n) {
			out = u
			return nil
		}
		if sp := ed.p.Security.Value; sp.ProtectedReplies.Has() && n.Security.ProtectedReplies != "none" &&
			(u.License == nil || u.License.Tier != licadmin.Pro) {
			return licadmin.Errorf(licadmin.EREQUIRESPRO, "protected replies by SMS or Microsoft need a Pro license; assign one first")
		}
		var domain string
		if n.Email != u.Email {
			if !s.Webmail.Has(ed.domain) {
				domain = licadmin.EmailDomainKey(ed.domain)
			}
		}
		out, err = s.Store.UpdateUser(ctx, c, u, n, domain, ifMatch != nil, s.Now.Read())
		return err
	})
	return out, err
}

// Delete deletes a user of the caller's account: its license goes back to
// the pool, its email is free again, its logs become unreadable at once. It
// fails with ENOTFOUND and ELASTADMIN (the account's last admin).
func (s *Service) Delete(ctx context.Context, r licadmin.Request, userID string) error {
	return licadmin.RetryStale(ctx, func() error {
		c, u, err := licadmin.AdminAndUser(ctx, s.Store, r.Email, userID)
		if err != nil {
			return err
		}
		return s.Store.DeleteUser(ctx, c, u, s.Now.Read())
	})
}
