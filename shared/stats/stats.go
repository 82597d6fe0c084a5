// Package stats answers usage statistics: an account's pool, its user
// counts and each user's usage for a period of months, and one user's
// usage month by month. Everything comes from counters that ingestion
// maintains (per user and month) and from the users themselves, never from
// log entries, so what a request reads does not grow with the logs.
package stats

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"licenseadmin/shared/csvsafe"
	"licenseadmin/shared/licadmin"
)

// Store is what statistics need from storage.
type Store interface {
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	Pool(ctx context.Context, accountID string) (*licadmin.Pool, error)
	ListUsers(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]*licadmin.User, []byte, error)
	CountUsers(ctx context.Context, accountID string) (licadmin.UserCounts, error)
	UsageOf(ctx context.Context, userIDs, months []string) (map[string]licadmin.Counters, error)
	UserUsage(ctx context.Context, userID, from, to string) (map[string]licadmin.Counters, error)
}

// Service applies the statistics rules: admins only, within their account.
type Service struct {
	Store Store
	Now   licadmin.Clock
}

// Limits.
const (
	// MaxMonths is the longest period one request covers.
	MaxMonths = 12
	// DefaultLimit and MaxLimit bound a JSON page of users (docs/api.md).
	DefaultLimit = 50
	MaxLimit     = 200
	// MaxCSVLimit is the default and largest page of a CSV answer: a
	// spreadsheet wants every user at once, within a Lambda response.
	MaxCSVLimit = 1000
)

// Period is a range of whole months, From to To inclusive (YYYY-MM, UTC).
type Period struct {
	From   string   `json:"from"`
	To     string   `json:"to"`
	Months []string `json:"-"`
}

// ParsePeriod resolves the from and to parameters at now: YYYY-MM months,
// to defaulting to the current month and from to to. It answers EINVALID
// when a month is malformed, from is after to, or the period is longer than
// MaxMonths.
func ParsePeriod(from, to string, now time.Time) (Period, error) {
	end := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if to != "" {
		t, err := time.Parse(licadmin.MonthLayout, to)
		if err != nil || t.Year() < 1970 || t.Year() > 9999 {
			return Period{}, licadmin.Invalid("to", "invalid_month", "to must be a month: YYYY-MM")
		}
		end = t
	}
	start := end
	if from != "" {
		f, err := time.Parse(licadmin.MonthLayout, from)
		if err != nil || f.Year() < 1970 || f.Year() > 9999 {
			return Period{}, licadmin.Invalid("from", "invalid_month", "from must be a month: YYYY-MM")
		}
		start = f
	}
	if start.After(end) {
		return Period{}, licadmin.Invalid("from", "invalid_range", "from must not be after to")
	}
	p := Period{From: start.Format(licadmin.MonthLayout), To: end.Format(licadmin.MonthLayout)}
	for m := start; !m.After(end); m = m.AddDate(0, 1, 0) {
		if len(p.Months) == MaxMonths {
			return Period{}, licadmin.Invalid("from", "period_too_long", "a period covers at most 12 months")
		}
		p.Months = append(p.Months, m.Format(licadmin.MonthLayout))
	}
	return p, nil
}

// Row is one user's usage over a period.
type Row struct {
	UserID    string          `json:"userId"`
	Email     string          `json:"email"`
	FirstName string          `json:"firstName"`
	LastName  string          `json:"lastName"`
	License   *licadmin.Tier  `json:"license"`
	Status    licadmin.Status `json:"status"`
	licadmin.Usage
}

// Report is a page of an account's statistics.
type Report struct {
	From  string              `json:"from"`
	To    string              `json:"to"`
	Pool  []licadmin.TierPool `json:"pool"`
	Users licadmin.UserCounts `json:"users"`
	Items []Row               `json:"items"`
	// NextCursor is set by the HTTP layer from the position Account returns.
	NextCursor *string `json:"nextCursor"`
}

// Query selects a page of an account's statistics. From and To are the raw
// parameters.
type Query struct {
	From, To string
	Limit    int
	CSV      bool
	// After is the position the previous page ended at (verified by the
	// HTTP layer's cursor codec), nil for the first page.
	After []byte
}

// Scope returns what a cursor of this query is bound to, besides the caller.
func (q Query) Scope() string {
	return strings.Join([]string{"stats", q.From, q.To, strconv.FormatBool(q.CSV)}, "\x00")
}

// position is what a stats cursor holds: the period and the user counts as
// resolved for the first page (so that every page of one report describes
// the same period and the counts are read once), and where the users' list
// stopped.
type position struct {
	Period Period              `json:"p"`
	Months []string            `json:"m"`
	Counts licadmin.UserCounts `json:"c"`
	Users  []byte              `json:"u"`
}

// Account returns a page of the statistics of the caller's account and the
// position after it (nil at the end). Admins only.
func (s *Service) Account(ctx context.Context, r licadmin.Request, q Query) (*Report, []byte, error) {
	limit, maxLimit := q.Limit, MaxLimit
	if q.CSV {
		maxLimit = MaxCSVLimit
	}
	if limit == 0 {
		limit = DefaultLimit
		if q.CSV {
			limit = MaxCSVLimit
		}
	}
	if limit < 1 || limit > maxLimit {
		return nil, nil, licadmin.Invalid("limit", "out_of_range", "limit must be from 1 to "+strconv.Itoa(maxLimit))
	}
	var pos position
	if q.After != nil {
		if err := json.Unmarshal(q.After, &pos); err != nil || len(pos.Users) == 0 || len(pos.Months) == 0 {
			return nil, nil, licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
		}
		pos.Period.Months = pos.Months
	} else {
		p, err := ParsePeriod(q.From, q.To, s.Now.Read())
		if err != nil {
			return nil, nil, err
		}
		pos.Period = p
	}
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, nil, err
	}
	pool, err := s.Store.Pool(ctx, c.AccountID)
	if err != nil {
		return nil, nil, err
	}
	if q.After == nil {
		if pos.Counts, err = s.Store.CountUsers(ctx, c.AccountID); err != nil {
			return nil, nil, err
		}
	}
	users, nextUsers, err := s.Store.ListUsers(ctx, c.AccountID, licadmin.UserFilter{}, limit, pos.Users)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	sums, err := s.Store.UsageOf(ctx, ids, pos.Period.Months)
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{From: pos.Period.From, To: pos.Period.To, Pool: pool.Tiers, Users: pos.Counts, Items: make([]Row, len(users))}
	for i, u := range users {
		row := Row{UserID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName, Status: u.Status, Usage: licadmin.UsageOf(sums[u.ID])}
		if u.License != nil {
			tier := u.License.Tier
			row.License = &tier
		}
		rep.Items[i] = row
	}
	if nextUsers == nil {
		return rep, nil, nil
	}
	next, err := json.Marshal(position{Period: pos.Period, Months: pos.Period.Months, Counts: pos.Counts, Users: nextUsers})
	return rep, next, err
}

// MonthUsage is one month of a user's usage.
type MonthUsage struct {
	Month string `json:"month"`
	licadmin.Usage
}

// UserReport is one user's usage over a period: the total and each month.
type UserReport struct {
	UserID string `json:"userId"`
	From   string `json:"from"`
	To     string `json:"to"`
	licadmin.Usage
	Months []MonthUsage `json:"months"`
}

// User returns the usage of user userID of the caller's account over the
// period from..to. Admins only; ENOTFOUND for unknown ids and ids of other
// accounts alike.
func (s *Service) User(ctx context.Context, r licadmin.Request, userID, from, to string) (*UserReport, error) {
	p, err := ParsePeriod(from, to, s.Now.Read())
	if err != nil {
		return nil, err
	}
	_, u, err := licadmin.AdminAndUser(ctx, s.Store, r.Email, userID)
	if err != nil {
		return nil, err
	}
	months, err := s.Store.UserUsage(ctx, u.ID, p.From, p.To)
	if err != nil {
		return nil, err
	}
	rep := &UserReport{UserID: u.ID, From: p.From, To: p.To, Months: make([]MonthUsage, len(p.Months))}
	var total licadmin.Counters
	for i, m := range p.Months {
		total.Add(months[m])
		rep.Months[i] = MonthUsage{Month: m, Usage: licadmin.UsageOf(months[m])}
	}
	rep.Usage = licadmin.UsageOf(total)
	return rep, nil
}

// CSVHeader is the header row of the statistics CSV.
var CSVHeader = []string{"user_id", "email", "first_name", "last_name", "license", "status",
	"sent", "bytes_sent", "opens", "downloads", "signed", "open_ratio", "signature_ratio"}

// WriteCSV writes a report's users as CSV for a spreadsheet: a UTF-8 BOM,
// the header, one row per user, every cell neutralised against formulas.
func WriteCSV(w io.Writer, rep *Report) error {
	if _, err := io.WriteString(w, csvsafe.BOM); err != nil {
		return err
	}
	cw := csvsafe.NewWriter(w)
	if err := cw.Write(CSVHeader...); err != nil {
		return err
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range rep.Items {
		license := "none"
		if r.License != nil {
			license = string(*r.License)
		}
		if err := cw.Write(r.UserID, r.Email, r.FirstName, r.LastName, license, string(r.Status),
			n(r.Sent), n(r.BytesSent), n(r.Opens), n(r.Downloads), n(r.Signed), f(r.OpenRatio), f(r.SignatureRatio)); err != nil {
			return err
		}
	}
	return cw.Flush()
}
