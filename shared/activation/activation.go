// Package activation holds the rules of activation links (rule 7 of docs/api.md and
// "Activation"): an admin asks for an activation email (at most one per
// user per minute); the email's delivery mints the token (32 random bytes,
// of which only the SHA-256 is stored, expiring, single use); the public
// page GET /activate shows a button and changes nothing, so that mail
// scanners that open links activate nobody; the button's POST
// /v1/activations consumes the token and makes the user active.
package activation

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// DefaultTTL is how long an activation link works (docs/api.md: 7 days).
const DefaultTTL = 7 * 24 * time.Hour

// TokenBytes is the number of random bytes in a token.
const TokenBytes = 32

// Store is what the activation rules need from storage.
type Store interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	RequestActivationEmail(ctx context.Context, c *licadmin.Caller, u *licadmin.User, now time.Time) error
	PutActivationToken(ctx context.Context, tok *store.ActivationToken) error
	GetActivationToken(ctx context.Context, hash []byte, now time.Time) (*store.ActivationToken, error)
	ConsumeActivationToken(ctx context.Context, tok *store.ActivationToken, now time.Time) error
}

// Service applies the activation rules.
type Service struct {
	Store Store
	Now   licadmin.Clock
	// TTL is how long a link works; zero means DefaultTTL.
	TTL time.Duration
	// PublicBaseURL is where the API is reached from the outside (scheme,
	// host and any path prefix, no trailing slash): links are built from
	// it, never from a request's Host header.
	PublicBaseURL string
	// Logger is told when the page could not read its token's language
	// (it then follows the browser's); nil means slog.Default().
	Logger *slog.Logger
}

// RequestEmail queues an activation email for user userID of the caller's
// account. Admins only. It fails with ENOTFOUND and ERATELIMITED (one was
// requested less than a minute ago).
func (s *Service) RequestEmail(ctx context.Context, r licadmin.Request, userID string) error {
	c, u, err := licadmin.AdminAndUser(ctx, s.Store, r.Email, userID)
	if err != nil {
		return err
	}
	return s.Store.RequestActivationEmail(ctx, c, u, s.Now.Read())
}

// Link is a minted activation link.
type Link struct {
	URL       string
	ExpiresAt time.Time
}

// Mint creates a token for the recipient of an activation outbox item,
// stores its hash, and returns the link that carries it. The token itself
// exists only in the returned link (the email).
func (s *Service) Mint(ctx context.Context, o *store.Outbox) (*Link, error) {
	base, err := s.baseURL()
	if err != nil {
		return nil, err
	}
	raw, hash, err := NewToken()
	if err != nil {
		return nil, err
	}
	now := s.Now.Read()
	tok := &store.ActivationToken{
		Hash: hash, UserID: o.UserID, AccountID: o.AccountID, Email: o.Email, Language: o.Language, OutboxID: o.ID,
		CreatedAt: now, ExpiresAt: now.Add(s.ttl()),
	}
	if err := s.Store.PutActivationToken(ctx, tok); err != nil {
		return nil, err
	}
	return &Link{URL: base + "/activate?token=" + raw, ExpiresAt: tok.ExpiresAt}, nil
}

// PageLanguages returns the languages the activation page for token is
// shown in: its user's language (docs/api.md: the page is in the user's
// language) while the token works, else French or English when the
// browser's Accept-Language prefers one of them, both otherwise. It reads
// the token and changes nothing: mail scanners that open the link use it
// up no more than they did. A used, expired or made-up token gets the
// browser's page; so the language can tell whoever holds a link whether
// it still works, which its button tells them anyway. A failed read is
// logged and the browser's language used: the page never fails for it.
func (s *Service) PageLanguages(ctx context.Context, token, acceptLanguage string) []string {
	if hash, ok := ParseToken(token); ok {
		tok, err := s.Store.GetActivationToken(ctx, hash, s.Now.Read())
		switch {
		case err != nil:
			cmp.Or(s.Logger, slog.Default()).WarnContext(ctx, "activation page: token not read; the browser's language is used", "err", err.Error())
		case tok != nil && slices.Contains(licadmin.Languages, tok.Language):
			return []string{tok.Language}
		}
	}
	return browserLanguages(acceptLanguage)
}

// browserLanguages returns French or English when acceptLanguage prefers
// one of them, both otherwise.
func browserLanguages(acceptLanguage string) []string {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err == nil {
		for _, t := range tags {
			base, _ := t.Base()
			for _, l := range licadmin.Languages {
				if base.String() == l {
					return []string{l}
				}
			}
		}
	}
	return licadmin.Languages
}

// Activate consumes token and makes its user active. It fails with
// ETOKENINVALID, one code for a malformed, unknown, used or expired token.
func (s *Service) Activate(ctx context.Context, token string) error {
	invalid := licadmin.Errorf(licadmin.ETOKENINVALID, "this activation link is invalid, already used or expired; ask an administrator for a new one")
	hash, ok := ParseToken(token)
	if !ok {
		return invalid
	}
	now := s.Now.Read()
	tok, err := s.Store.GetActivationToken(ctx, hash, now)
	if err != nil {
		return err
	}
	if tok == nil {
		return invalid
	}
	return s.Store.ConsumeActivationToken(ctx, tok, now)
}

// NewToken returns a new token, base64url-encoded for a link, and its
// SHA-256, the only form in which it is stored.
func NewToken() (token string, hash []byte, err error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new activation token: %w", err)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(b), sum[:], nil
}

// ParseToken returns the SHA-256 of a token as links carry it, and false
// when it is not one (wrong encoding or length).
func ParseToken(token string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != TokenBytes {
		return nil, false
	}
	sum := sha256.Sum256(b)
	return sum[:], true
}

// ValidBaseURL checks a public base URL: absolute http(s), no query or
// fragment. It returns the URL without a trailing slash.
func ValidBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("PUBLIC_BASE_URL %q: want an absolute http(s) URL such as https://admin.example.com, without query", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

func (s *Service) baseURL() (string, error) {
	if s.PublicBaseURL == "" {
		return "", fmt.Errorf("activation links: PUBLIC_BASE_URL is not set")
	}
	return ValidBaseURL(s.PublicBaseURL)
}

func (s *Service) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultTTL
}
