// Package usage ingests the messaging service's usage events (sent,
// opened, downloaded, signed) from the usage queue: each event becomes an
// entry of its user's log generation as read (Ingester) and, from the
// entry's INSERT on the table's stream a few seconds later, an increment
// of the user's monthly counters (Recorder), once, however often the queue
// delivers it.
package usage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// Message is a usage event as the messaging service puts it on the queue
// (the body of one SQS message). UserID or Email names the user; AccountID
// must be that user's account.
type Message struct {
	EventID    string   `json:"eventId"`
	AccountID  string   `json:"accountId"`
	UserID     string   `json:"userId,omitempty"`
	Email      string   `json:"email,omitempty"`
	Type       string   `json:"type"`
	At         string   `json:"at"`
	MessageRef string   `json:"messageRef"`
	Recipients []string `json:"recipients"`
	Bytes      int64    `json:"bytes"`
	IP         string   `json:"ip"`
}

// Limits on an event's fields; an event beyond them is malformed.
const (
	MaxIDLength         = 128
	MaxMessageRefLength = 256
	MaxRecipients       = 500
	MaxBytes            = 1 << 40
	// MaxClockSkew is how far in the future an event's time may be.
	MaxClockSkew = 5 * time.Minute
)

// Store is what ingestion needs from storage.
type Store interface {
	UsageUsers(ctx context.Context, ids, emails []string) (byID, byEmail map[string]*licadmin.User, err error)
	RecordUsage(ctx context.Context, writes []store.UsageWrite, now time.Time) []error
}

// Ingester consumes the usage queue.
type Ingester struct {
	Store  Store
	Now    licadmin.Clock
	Logger *slog.Logger
	// Metrics is told, per batch, how many events were ingested, dropped
	// and failed; nil records nothing.
	Metrics BatchMetrics

	// Remember is how long a user read for a batch may decide the next
	// batches' events (0: every batch reads its users). Read
	// eventually consistently, a user is already up to about a second
	// old (DynamoDB's replication); remembering it as long again spares
	// most batches their read, at the price of the same kind of
	// staleness, documented in docs/design.md.
	Remember time.Duration

	users userMemory
}

// BatchMetrics records the outcome of a batch of usage events (CloudWatch
// EMF in Lambda: *metrics.Emitter): events ingested (or already written),
// dropped for good (malformed, unknown user), and failed for a while (they
// go back to the queue, and to its dead-letter queue in the end).
type BatchMetrics interface {
	Usage(ingested, dropped, failed int)
}

// errDrop marks an event that is never retried: malformed, or naming a
// user that does not exist in the event's account.
type errDrop struct{ reason string }

func (e *errDrop) Error() string { return e.reason }

func drop(reason string) error { return &errDrop{reason: reason} }

// HandleSQS is the ingest function's handler. A batch costs one read of
// its users (Store.UsageUsers) and one BatchWriteItem per 25 events
// (Store.RecordUsage: the events' log entries, or claims of old events);
// the monthly counters follow from the table's stream (Recorder). It
// reports in
// BatchItemFailures only the messages whose write failed for a reason that
// may pass (throttling, an unavailable table), so that the queue
// redelivers just those, and after its maxReceiveCount moves them to the
// dead-letter queue. Malformed events and events of unknown users, or of
// users of another account, or of a log that ended (endedLog), are logged
// and dropped. An event twice in the batch (same account and event id) is
// written once.
func (in *Ingester) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	now := in.Now.Read()
	n := len(ev.Records)
	parsed := make([]*licadmin.UsageEvent, n)
	outcome := make([]error, n)
	first := make([]int, n) // the message that writes this one's event
	sent := make([]time.Time, n)
	seen := map[[2]string]int{}
	for i, m := range ev.Records {
		first[i] = i
		e, err := Parse([]byte(m.Body), now)
		if err != nil {
			outcome[i] = err
			continue
		}
		k := [2]string{e.AccountID, e.ID}
		if j, ok := seen[k]; ok {
			first[i] = j
			continue
		}
		seen[k] = i
		parsed[i] = e
		sent[i] = sentAt(m)
	}
	users, err := in.usersOf(ctx, parsed, now)
	var writes []store.UsageWrite
	var writer []int
	for i, e := range parsed {
		if e == nil {
			continue
		}
		u := users[i]
		switch {
		case u == nil && err != nil:
			outcome[i] = err
		case u == nil:
			outcome[i] = drop("no such user")
		case u.AccountID != e.AccountID:
			outcome[i] = drop("the user is not of the event's account")
		case e.UserID != "" && e.Email != "" && u.Email != e.Email:
			outcome[i] = drop("userId and email name different users")
		case endedLog(e, u, sent[i]):
			outcome[i] = drop("the event is timed or was queued before its user's license was removed or transferred, which ended the log it belongs to")
		default:
			writes = append(writes, store.UsageWrite{Event: e, User: u, Sent: sent[i]})
			writer = append(writer, i)
		}
	}
	if len(writes) > 0 {
		for w, err := range in.Store.RecordUsage(ctx, writes, now) {
			outcome[writer[w]] = err
		}
	}

	var resp events.SQSEventResponse
	dropped := 0
	for i, m := range ev.Records {
		err := outcome[first[i]]
		if err == nil {
			continue
		}
		if d := (*errDrop)(nil); errors.As(err, &d) {
			in.logger().WarnContext(ctx, "usage event dropped", "messageId", m.MessageId, "reason", d.reason)
			dropped++
			continue
		}
		in.logger().ErrorContext(ctx, "usage event not written; it will be redelivered", "messageId", m.MessageId,
			"receiveCount", m.Attributes["ApproximateReceiveCount"], "err", err.Error())
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
	}
	if in.Metrics != nil {
		failed := len(resp.BatchItemFailures)
		in.Metrics.Usage(n-dropped-failed, dropped, failed)
	}
	return resp, nil
}

// usersOf returns the user each event names (nil: none, or e is nil):
// remembered when read at most Remember ago, read otherwise, all at
// once. A batch that reads also reads again the users it remembers from
// more than half of Remember ago, so that the users of a busy stream are
// read together rather than a batch each. err is why the read failed;
// the events of remembered users have their users still.
func (in *Ingester) usersOf(ctx context.Context, events []*licadmin.UsageEvent, now time.Time) ([]*licadmin.User, error) {
	users := make([]*licadmin.User, len(events))
	ask := make([]bool, len(events))
	var ids, emails []string
	for i, e := range events {
		if e == nil {
			continue
		}
		u, age := in.users.find(e, now)
		if u != nil && age <= in.Remember {
			users[i] = u
			if age <= in.Remember/2 {
				continue
			}
		}
		ask[i] = true
		if e.UserID != "" {
			ids = append(ids, e.UserID)
		} else {
			emails = append(emails, e.Email)
		}
	}
	needed := false // an event has no remembered user
	for i, e := range events {
		needed = needed || (e != nil && users[i] == nil)
	}
	if !needed {
		return users, nil
	}
	byID, byEmail, err := in.Store.UsageUsers(ctx, ids, emails)
	if err != nil {
		return users, err
	}
	if in.Remember > 0 {
		in.users.remember(ids, emails, byID, byEmail, now)
	}
	for i, e := range events {
		switch {
		case !ask[i]:
		case e.UserID != "":
			users[i] = byID[e.UserID]
		default:
			users[i] = byEmail[e.Email]
		}
	}
	return users, nil
}

// sentAt returns when the queue received m (its SentTimestamp attribute,
// the same on every delivery); zero when m does not say.
func sentAt(m events.SQSMessage) time.Time {
	ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// endedLog reports whether e belongs to a log generation of u that a
// license removal or transfer ended: e is timed, or its message was
// queued, before u's current generation began (to the millisecond, the
// queue's precision). Such an event is dropped: its log is erased, and
// had it been written before the change, its redelivery must not write
// it again into the new generation, where it would show and count twice.
// An event written into the old generation was queued before its user
// was read, so before the change: every redelivery of it is refused.
func endedLog(e *licadmin.UsageEvent, u *licadmin.User, sent time.Time) bool {
	if u.LogSince.IsZero() {
		return false
	}
	t := e.At
	if !sent.IsZero() && sent.Before(t) {
		t = sent
	}
	return t.UnixMilli() < u.LogSince.UnixMilli()
}

// IsDropped reports whether err, from Parse, means the event was dropped
// for good rather than failed for a while.
func IsDropped(err error) bool {
	var d *errDrop
	return errors.As(err, &d)
}

// Parse decodes and validates a message body at now. A malformed event
// answers an error for which IsDropped is true, naming what is wrong.
func Parse(body []byte, now time.Time) (*licadmin.UsageEvent, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, drop("malformed: not a JSON usage event")
	}
	ev := &licadmin.UsageEvent{
		ID: m.EventID, AccountID: m.AccountID, UserID: m.UserID, MessageRef: m.MessageRef,
		Recipients: m.Recipients, Bytes: m.Bytes, IP: m.IP,
	}
	if ev.Recipients == nil {
		ev.Recipients = []string{}
	}
	if !validID(m.EventID) {
		return nil, drop("malformed: eventId must be 1 to 128 printable characters")
	}
	if !validID(m.AccountID) {
		return nil, drop("malformed: accountId is required")
	}
	if m.UserID != "" && !validID(m.UserID) {
		return nil, drop("malformed: userId is not a valid id")
	}
	if m.Email != "" {
		email, _, err := licadmin.ParseEmail("email", m.Email)
		if err != nil {
			return nil, drop("malformed: email is not a valid address")
		}
		ev.Email = email
	}
	if ev.UserID == "" && ev.Email == "" {
		return nil, drop("malformed: userId or email is required")
	}
	t, err := licadmin.ParseEventType("type", m.Type)
	if err != nil {
		return nil, drop("malformed: type must be sent, opened, downloaded or signed")
	}
	ev.Type = t
	at, err := time.Parse(time.RFC3339Nano, m.At)
	if err != nil || at.Year() < 2000 || at.After(now.Add(MaxClockSkew)) {
		return nil, drop("malformed: at must be an RFC 3339 time, not in the future")
	}
	ev.At = at.UTC()
	if utf8.RuneCountInString(m.MessageRef) > MaxMessageRefLength || !utf8.ValidString(m.MessageRef) {
		return nil, drop("malformed: messageRef is too long")
	}
	if len(m.Recipients) > MaxRecipients {
		return nil, drop("malformed: too many recipients")
	}
	for _, r := range m.Recipients {
		if r == "" || len(r) > licadmin.MaxEmailLength || !utf8.ValidString(r) {
			return nil, drop("malformed: a recipient is empty or too long")
		}
	}
	if m.Bytes < 0 || m.Bytes > MaxBytes {
		return nil, drop("malformed: bytes out of range")
	}
	if m.IP != "" {
		ip, err := netip.ParseAddr(m.IP)
		if err != nil {
			return nil, drop("malformed: ip is not an IP address")
		}
		ev.IP = ip.String()
	}
	return ev, nil
}

func validID(s string) bool {
	if s == "" || len(s) > MaxIDLength {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= 0x20 || r >= 0x7f })
}

func (in *Ingester) logger() *slog.Logger { return cmp.Or(in.Logger, slog.Default()) }
