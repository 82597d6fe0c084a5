package licadmin

import (
	"errors"
	"time"
)

// EventType is what happened to a message: the messaging service reports
// each as a usage event, which becomes a log entry and a counter increment.
type EventType string

// The usage event types.
const (
	EventSent       EventType = "sent"
	EventOpened     EventType = "opened"
	EventDownloaded EventType = "downloaded"
	EventSigned     EventType = "signed"
)

// EventTypes lists every event type.
var EventTypes = []EventType{EventSent, EventOpened, EventDownloaded, EventSigned}

// ParseEventType returns the event type named s, or an EINVALID error
// naming field.
func ParseEventType(field, s string) (EventType, error) {
	switch t := EventType(s); t {
	case EventSent, EventOpened, EventDownloaded, EventSigned:
		return t, nil
	}
	return "", Invalid(field, "unknown_type", "type must be one of sent, opened, downloaded, signed")
}

// ErrDuplicateEvent means a usage event was already ingested: its log
// entry and counters are in the table, and nothing was written again.
var ErrDuplicateEvent = errors.New("usage event already ingested")

// UsageEvent is one event of the messaging service, as it arrives on the
// usage queue. UserID or Email names the user; AccountID must be the
// user's account.
type UsageEvent struct {
	ID         string
	AccountID  string
	UserID     string
	Email      string
	Type       EventType
	At         time.Time
	MessageRef string
	Recipients []string
	Bytes      int64
	IP         string
}

// LogEntry is one entry of a user's log, in the representation clients see.
type LogEntry struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Type       EventType `json:"type"`
	MessageRef string    `json:"messageRef"`
	Recipients []string  `json:"recipients"`
	Size       int64     `json:"size"`
	SourceIP   string    `json:"sourceIp"`
}

// LogRange selects the log entries with From <= time < To, of one type
// when Type is not empty.
type LogRange struct {
	From time.Time
	To   time.Time
	Type EventType
}

// MonthLayout is how months are written in keys and in the API: YYYY-MM;
// months are UTC.
const MonthLayout = "2006-01"

// Counters are the usage counters of one user for one month (or the sum of
// several months). They are added up from the table's stream, a few
// seconds after the ingestion wrote the events (package usage, Counter).
type Counters struct {
	Sent      int64 `json:"sent"`
	BytesSent int64 `json:"bytesSent"`
	Opens     int64 `json:"opens"`
	Downloads int64 `json:"downloads"`
	Signed    int64 `json:"signed"`
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Sent += o.Sent
	c.BytesSent += o.BytesSent
	c.Opens += o.Opens
	c.Downloads += o.Downloads
	c.Signed += o.Signed
}

// Count adds one event of type t (of bytes, for a sent message) to c.
func (c *Counters) Count(t EventType, bytes int64) {
	switch t {
	case EventSent:
		c.Sent++
		c.BytesSent += bytes
	case EventOpened:
		c.Opens++
	case EventDownloaded:
		c.Downloads++
	case EventSigned:
		c.Signed++
	}
}

// Usage is counters with their ratios, as statistics show them.
//
// OpenRatio is opens / sent and SignatureRatio is signed / sent, both 0
// when nothing was sent. Opens count every opening by every recipient, so
// OpenRatio can exceed 1 (a message sent to three recipients who all open
// it once counts 1 sent and 3 opens).
type Usage struct {
	Counters
	OpenRatio      float64 `json:"openRatio"`
	SignatureRatio float64 `json:"signatureRatio"`
}

// UsageOf returns c with its ratios, rounded to four decimals.
func UsageOf(c Counters) Usage {
	u := Usage{Counters: c}
	if c.Sent > 0 {
		u.OpenRatio = round4(float64(c.Opens) / float64(c.Sent))
		u.SignatureRatio = round4(float64(c.Signed) / float64(c.Sent))
	}
	return u
}

func round4(f float64) float64 {
	const k = 10000
	return float64(int64(f*k+0.5)) / k
}

// Retention is how long a log entry is kept, by the tier of the license
// its user holds when the entry is written: eco 90 days, advanced 1 year,
// pro 7 years, and 30 days for a user without a license. The table's TTL
// deletes entries after it; changing tier later does not change the
// retention of entries already written.
func Retention(l *License) time.Duration {
	const day = 24 * time.Hour
	if l == nil {
		return 30 * day
	}
	switch l.Tier {
	case Eco:
		return 90 * day
	case Advanced:
		return 365 * day
	case Pro:
		return 7 * 365 * day
	}
	return 30 * day
}

// MaxRetention is the longest Retention; monthly counters are kept as long.
const MaxRetention = 7 * 365 * 24 * time.Hour

// UserCounts counts an account's users for statistics.
type UserCounts struct {
	Total      int64 `json:"total"`
	Active     int64 `json:"active"`
	Pending    int64 `json:"pending"`
	Unlicensed int64 `json:"unlicensed"`
}

// ExportStatus is the state of a log export.
type ExportStatus string

// The states of a log export.
const (
	ExportRunning ExportStatus = "running"
	ExportDone    ExportStatus = "done"
	ExportFailed  ExportStatus = "failed"
)

// Export is a request to export a user's logs as CSV to S3.
type Export struct {
	ID        string
	AccountID string
	UserID    string
	// LogGeneration is the user's log generation when the export was
	// requested; a file of an older generation is never handed out.
	LogGeneration int64
	Range         LogRange
	Status        ExportStatus
	// Key is the S3 object key of the CSV.
	Key   string
	Rows  int64
	Error string
	// CreatedBy is the email of the user who asked for the export, and
	// CreatedByID that user's id: the one caller GET /v1/exports answers.
	CreatedBy   string
	CreatedByID string
	// Own marks a user's export of its own journal (POST
	// /v1/me/logs/export), which needs no admin rights.
	Own       bool
	CreatedAt time.Time
	UpdatedAt time.Time
}
