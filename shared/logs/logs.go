// Package logs holds the rules for reading users' event logs: who may read
// which user's log, how a date range and a type select entries, how they
// are exported as CSV to S3, and how the entries of a former license holder
// are purged. Entries are always read from the user's current log
// generation, so the entries of a generation that remove, transfer or
// delete-user left behind are unreadable at once (docs/api.md, rule 6), before the
// purge deletes them.
package logs

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"licenseadmin/shared/licadmin"
)

// Store is what reading logs needs from storage.
type Store interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	FindUser(ctx context.Context, userID, email string) (*licadmin.User, error)
	ListLogs(ctx context.Context, userID string, gen int64, r licadmin.LogRange, limit int, after string, now time.Time) ([]licadmin.LogEntry, string, error)
}

// Service applies the log reading rules for portal callers.
type Service struct {
	Store Store
	Now   licadmin.Clock
}

// Page limits (docs/api.md, "Representations") and the default range.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	DefaultDays  = 30
)

// Query selects a page of log entries. From, To and Type are the raw query
// parameters.
type Query struct {
	From, To, Type string
	Limit          int
	// After is the position the previous page ended at (already verified
	// by the HTTP layer's cursor codec), nil for the first page.
	After []byte
}

// Scope returns what a cursor of this query is bound to, besides the
// caller: the list, the user and the filters as given.
func (q Query) Scope(list, userID string) string {
	return strings.Join([]string{list, userID, q.From, q.To, q.Type}, "\x00")
}

// position is what a cursor holds: the range as resolved for the first
// page (so that "the last 30 days" does not slide between pages) and the
// last entry returned.
type position struct {
	From  time.Time `json:"f"`
	To    time.Time `json:"t"`
	After string    `json:"a"`
}

// ForUser returns a page of the log of user userID of the caller's account,
// newest first, and the position after it (nil at the end). Admins only;
// ENOTFOUND for unknown ids and ids of other accounts alike.
func (s *Service) ForUser(ctx context.Context, r licadmin.Request, userID string, q Query) ([]licadmin.LogEntry, []byte, error) {
	rg, limit, err := s.parse(q)
	if err != nil {
		return nil, nil, err
	}
	_, u, err := licadmin.AdminAndUser(ctx, s.Store, r.Email, userID)
	if err != nil {
		return nil, nil, err
	}
	return s.page(ctx, u, rg, limit, q.After)
}

// Mine returns a page of the caller's own log; any user may read it.
func (s *Service) Mine(ctx context.Context, r licadmin.Request, q Query) ([]licadmin.LogEntry, []byte, error) {
	rg, limit, err := s.parse(q)
	if err != nil {
		return nil, nil, err
	}
	c, _, err := s.Store.LoadCaller(ctx, r.Email)
	if err != nil {
		return nil, nil, err
	}
	if err := licadmin.RequireCaller(c); err != nil {
		return nil, nil, err
	}
	me, err := s.Store.FindUser(ctx, c.UserID, "")
	if err != nil {
		return nil, nil, err
	}
	u, err := licadmin.VisibleUser(c, me, c.UserID)
	if err != nil {
		return nil, nil, err
	}
	return s.page(ctx, u, rg, limit, q.After)
}

func (s *Service) parse(q Query) (licadmin.LogRange, int, error) {
	rg, err := ParseRange(q.From, q.To, q.Type, s.Now.Read())
	if err != nil {
		return rg, 0, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return rg, 0, licadmin.Invalid("limit", "out_of_range", "limit must be from 1 to 200")
	}
	return rg, limit, nil
}

func (s *Service) page(ctx context.Context, u *licadmin.User, rg licadmin.LogRange, limit int, after []byte) ([]licadmin.LogEntry, []byte, error) {
	var from string
	if after != nil {
		var p position
		if err := json.Unmarshal(after, &p); err != nil || p.After == "" {
			return nil, nil, licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
		}
		rg.From, rg.To, from = p.From, p.To, p.After
	}
	entries, last, err := s.Store.ListLogs(ctx, u.ID, u.LogGeneration, rg, limit, from, s.Now.Read())
	if err != nil {
		return nil, nil, err
	}
	if entries == nil {
		entries = []licadmin.LogEntry{}
	}
	if last == "" {
		return entries, nil, nil
	}
	next, err := json.Marshal(position{From: rg.From, To: rg.To, After: last})
	return entries, next, err
}

// ParseRange resolves the from, to and type parameters of a log request at
// now. from and to are RFC 3339 times or YYYY-MM-DD dates (UTC); a date as
// to includes that whole day. The range is from inclusive to exclusive;
// without from it starts DefaultDays before to, without to it ends now. It
// answers EINVALID naming the bad parameter.
func ParseRange(from, to, typ string, now time.Time) (licadmin.LogRange, error) {
	var rg licadmin.LogRange
	var err error
	if typ != "" {
		if rg.Type, err = licadmin.ParseEventType("type", typ); err != nil {
			return rg, err
		}
	}
	rg.To = now.UTC()
	if to != "" {
		if rg.To, err = parseBound("to", to, true); err != nil {
			return rg, err
		}
	}
	rg.From = rg.To.AddDate(0, 0, -DefaultDays)
	if from != "" {
		if rg.From, err = parseBound("from", from, false); err != nil {
			return rg, err
		}
	}
	if !rg.From.Before(rg.To) {
		return rg, licadmin.Invalid("from", "invalid_range", "from must be before to")
	}
	return rg, nil
}

// minTime and maxTime bound the times a range accepts: four-digit years,
// which keep sort keys of fixed width.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

func parseBound(field, s string, end bool) (time.Time, error) {
	bad := licadmin.Invalid(field, "invalid_time", field+" must be an RFC 3339 time (2026-11-23T08:50:00Z) or a date (2026-11-23)")
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		if d.Before(minTime) || d.After(maxTime) {
			return time.Time{}, bad
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, bad
	}
	return t.UTC(), nil
}
