// Package user holds the rules for an account's users: who may add, read
// and list them, what a valid user is, and which email domains an account
// may add (docs/api.md, rule 5).
package user

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"licenseadmin/shared/callercache"
	"licenseadmin/shared/licadmin"
)

// Store is what the user rules need from storage.
type Store interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	CreateUser(ctx context.Context, c *licadmin.Caller, u *licadmin.User, domain string, now time.Time) (*licadmin.User, error)
	ListUsers(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]*licadmin.User, []byte, error)
	SearchUsers(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]json.RawMessage, []byte, error)
	UpdateUser(ctx context.Context, c *licadmin.Caller, u, n *licadmin.User, emailDomain string, ifMatch bool, now time.Time) (*licadmin.User, error)
	DeleteUser(ctx context.Context, c *licadmin.Caller, u *licadmin.User, now time.Time) error
}

// Service applies the user rules for portal callers.
type Service struct {
	Store   Store
	Now     licadmin.Clock
	NewID   licadmin.IDSource
	Webmail licadmin.Webmail
	// Callers remembers the admins List has just checked, so that the
	// next page's Query can start while the caller is checked again
	// (callercache.Cache; nil: one after the other).
	Callers *callercache.Cache
}

// Page limits (docs/api.md, "Representations").
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// MaxNameLength bounds first and last names, in characters.
const MaxNameLength = 100

// Languages a user can have; messages and pages exist in these.
var Languages = []string{"fr", "en"}

// NewUser is the input of Create.
type NewUser struct {
	Email     string `json:"email"`
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Language  string `json:"language"`
	Role      string `json:"role"`
}

// Create adds a user to the caller's account, without a license and pending
// activation. It fails with EINVALID (naming every bad field),
// EDOMAINNOTAPPROVED and EEMAILTAKEN.
func (s *Service) Create(ctx context.Context, r licadmin.Request, in NewUser) (*licadmin.User, error) {
	email, domain, fields := validate(in)
	if len(fields) > 0 {
		return nil, &licadmin.Error{Code: licadmin.EINVALID, Message: "some fields are invalid; see errors", Fields: fields}
	}
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, err
	}
	now := s.Now.Read()
	u := &licadmin.User{
		ID:        s.NewID(),
		AccountID: c.AccountID,
		Email:     email,
		FirstName: strings.TrimSpace(in.FirstName),
		LastName:  strings.TrimSpace(in.LastName),
		Language:  defaultTo(in.Language, "en"),
		Role:      licadmin.Role(defaultTo(in.Role, string(licadmin.RoleUser))),
		Status:    licadmin.StatusPending,
		Security:  licadmin.Security{ProtectedReplies: "none"},
		CreatedAt: now,
		UpdatedAt: now,
		Version:   1,
	}
	if s.Webmail.Has(domain) {
		domain = ""
	}
	return s.Store.CreateUser(ctx, c, u, domain, now)
}

func validate(in NewUser) (email, domain string, fields []licadmin.FieldError) {
	email, domain, err := licadmin.ParseEmail("email", in.Email)
	if err != nil {
		fields = append(fields, err.(*licadmin.Error).Fields...)
	}
	for _, f := range []struct{ name, value string }{{"firstName", in.FirstName}, {"lastName", in.LastName}} {
		v := strings.TrimSpace(f.value)
		switch {
		case v == "":
			fields = append(fields, licadmin.FieldError{Field: f.name, Code: "required"})
		case utf8.RuneCountInString(v) > MaxNameLength || strings.ContainsFunc(v, isControl):
			fields = append(fields, licadmin.FieldError{Field: f.name, Code: "invalid"})
		}
	}
	if in.Language != "" && in.Language != "fr" && in.Language != "en" {
		fields = append(fields, licadmin.FieldError{Field: "language", Code: "unknown_language"})
	}
	if in.Role != "" && in.Role != string(licadmin.RoleUser) && in.Role != string(licadmin.RoleAdmin) {
		fields = append(fields, licadmin.FieldError{Field: "role", Code: "unknown_role"})
	}
	return email, domain, fields
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func defaultTo(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Get returns a user of the caller's account. Admins only; ENOTFOUND for
// unknown ids and ids of other accounts alike.
func (s *Service) Get(ctx context.Context, r licadmin.Request, userID string) (*licadmin.User, error) {
	_, u, err := licadmin.AdminAndUser(ctx, s.Store, r.Email, userID)
	return u, err
}

// ListQuery selects a page of users.
type ListQuery struct {
	Filter licadmin.UserFilter
	// Search is the text a user's email, first name or last name must
	// start with, as typed (List folds it); empty lists every user.
	Search string
	Limit  int
	// After is the position the previous page ended at (already verified
	// by the HTTP layer's cursor codec), nil for the first page.
	After []byte
}

// List returns a page of the caller's account users in creation order and
// the position after it (nil at the end). q.Search must fold to nothing
// (empty or blank: a search box left empty lists every user); Search
// searches. It fails with EINVALID for a bad filter or limit, or a q
// longer than licadmin.MaxSearchLength characters.
func (s *Service) List(ctx context.Context, r licadmin.Request, q ListQuery) ([]*licadmin.User, []byte, error) {
	q, err := checkList(q)
	if err != nil {
		return nil, nil, err
	}
	if q.Filter.Search != "" {
		return nil, nil, errors.New("list users: q searches; call Search")
	}
	return list(ctx, s, r, q, s.Store.ListUsers)
}

// Search returns a page of the caller's account users whose email, first
// name or last name starts with q.Search, whatever the case and accents,
// in the order of the matching text, and the position after it (nil at
// the end); such a page may be short, even empty, while a next one
// exists. Each user is returned encoded, the bytes json.Marshal gives for
// its licadmin.User, as the search index holds it: a page is written out
// without decoding its users. q.Search must not fold to nothing (List
// lists every user); the errors are List's.
func (s *Service) Search(ctx context.Context, r licadmin.Request, q ListQuery) ([]json.RawMessage, []byte, error) {
	q, err := checkList(q)
	if err != nil {
		return nil, nil, err
	}
	if q.Filter.Search == "" {
		return nil, nil, errors.New("search users: q is blank; call List")
	}
	return list(ctx, s, r, q, s.Store.SearchUsers)
}

// checkList checks q's search, filters and limit, and returns q with its
// search folded into q.Filter.Search and the default limit.
func checkList(q ListQuery) (ListQuery, error) {
	if utf8.RuneCountInString(q.Search) > licadmin.MaxSearchLength {
		return q, licadmin.Invalid("q", "too_long", "q must be at most 100 characters")
	}
	q.Filter.Search = licadmin.SearchKey(q.Search)
	switch q.Filter.License {
	case "", "none", string(licadmin.Eco), string(licadmin.Advanced), string(licadmin.Pro):
	default:
		return q, licadmin.Invalid("license", "unknown_tier", "license must be none, eco, advanced or pro")
	}
	switch q.Filter.Status {
	case "", string(licadmin.StatusPending), string(licadmin.StatusActive):
	default:
		return q, licadmin.Invalid("status", "unknown_status", "status must be pending or active")
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return q, licadmin.Invalid("limit", "out_of_range", "limit must be from 1 to 200")
	}
	return q, nil
}

// pageReader reads a page of an account's users: Store.ListUsers or
// Store.SearchUsers.
type pageReader[T any] func(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]T, []byte, error)

// list checks that the caller is an admin and reads the page of q from
// its account with read: for an admin remembered a moment ago, while the
// caller is checked (listEarly).
func list[T any](ctx context.Context, s *Service, r licadmin.Request, q ListQuery, read pageReader[T]) ([]T, []byte, error) {
	var c *licadmin.Caller
	if cached := s.Callers.Get(r.Email, s.Now.Read()); cached != nil {
		var page listed[T]
		if c, page = listEarly(ctx, s, r, cached, q, read); page.done {
			return page.users, page.next, page.err
		}
		if err := licadmin.RequireAdmin(c); err != nil {
			return nil, nil, err
		}
	} else {
		var err error
		if c, err = licadmin.Admin(ctx, s.Store, r.Email); err != nil {
			return nil, nil, err
		}
	}
	users, next, err := read(ctx, c.AccountID, q.Filter, q.Limit, q.After)
	if err == nil {
		s.Callers.Put(c, s.Now.Read())
	}
	return users, next, err
}

// listed is a page read for a remembered account.
type listed[T any] struct {
	users []T
	next  []byte
	err   error
	// done tells that the fresh check let the page be returned.
	done bool
}

// listEarly reads the caller's claim and, at the same time, the page of
// the account the caller was an admin of a moment ago (cached): a list
// then costs one round trip instead of two. The page is returned (done)
// only when the fresh claim names the same user, still an admin of that
// same account; otherwise it is dropped unseen and List goes on with the
// fresh caller (forbidden, or another account's page). The cache only
// decides what is read early, never what is returned.
func listEarly[T any](ctx context.Context, s *Service, r licadmin.Request, cached *licadmin.Caller, q ListQuery, read pageReader[T]) (*licadmin.Caller, listed[T]) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	early := make(chan listed[T], 1)
	go func() {
		users, next, err := read(ctx, cached.AccountID, q.Filter, q.Limit, q.After)
		early <- listed[T]{users: users, next: next, err: err}
	}()
	c, _, err := s.Store.LoadCaller(ctx, r.Email)
	if err != nil {
		return nil, listed[T]{err: err, done: true}
	}
	if !c.IsAdmin() || c.AccountID != cached.AccountID || c.UserID != cached.UserID {
		s.Callers.Forget(r.Email)
		return c, listed[T]{} // cancel drops the early read
	}
	page := <-early
	page.done = true
	if page.err == nil {
		s.Callers.Put(c, s.Now.Read())
	}
	return c, page
}
