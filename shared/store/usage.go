package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// EventClaimTTL is how long an ingested event's id is remembered, so that a
// redelivery counts once: longer than SQS keeps a message (14 days at most)
// and than the messaging service retries.
const EventClaimTTL = 30 * 24 * time.Hour

// FindUser returns a user by id when userID is not empty and by email
// otherwise (a usage event names its user either way), read consistently;
// nil when there is none. Callers check the account.
func (s *Store) FindUser(ctx context.Context, userID, email string) (*licadmin.User, error) {
	if userID == "" {
		claim, err := s.getItem(ctx, emailKey(email))
		if err != nil {
			return nil, fmt.Errorf("get email claim: %w", err)
		}
		if userID = getS(claim, "userId"); userID == "" {
			return nil, nil
		}
	}
	it, err := s.getItem(ctx, userKey(userID))
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", userID, err)
	}
	return decodeUser(it), nil
}

// UsageUsers reads the users a batch of usage events names, by id and by
// email, for ingestion: one eventually consistent BatchGetItem of the ids
// and the email claims (half a read unit per item), a second one of the
// users the claims name that the first did not read, then a consistent
// read of whatever was not found, so that a user created a moment ago is
// not taken for unknown. An absent user is absent from the maps.
//
// Reading eventually consistently is safe for ingestion because what it
// decides on never goes back: a user's account never changes, and its
// log generation only grows, so a stale generation is an ended one, which
// no read reaches (see RecordUsage).
func (s *Store) UsageUsers(ctx context.Context, ids, emails []string) (byID, byEmail map[string]*licadmin.User, err error) {
	byID, byEmail = map[string]*licadmin.User{}, map[string]*licadmin.User{}
	claims := map[string]string{} // email -> user id
	read := func(consistent bool, ids, emails []string) error {
		keys := make([]key, 0, len(ids)+len(emails))
		for _, id := range ids {
			keys = append(keys, userKey(id))
		}
		for _, e := range emails {
			keys = append(keys, emailKey(e))
		}
		items, err := s.batchGetRead(ctx, keys, consistent)
		if err != nil {
			return fmt.Errorf("read the users of usage events: %w", err)
		}
		for _, it := range items {
			if u := decodeUser(it); u != nil {
				byID[u.ID] = u
			} else if getS(it, attrSK) == skEmail {
				claims[getS(it, attrPK)[len("EMAIL#"):]] = getS(it, "userId")
			}
		}
		return nil
	}
	// missing returns the ids not read and the emails not resolved (or
	// whose user was not read, added to the ids).
	missing := func() (ids2, emails2 []string) {
		seen := map[string]bool{}
		add := func(id string) {
			if _, ok := byID[id]; !ok && !seen[id] && id != "" {
				seen[id] = true
				ids2 = append(ids2, id)
			}
		}
		for _, id := range ids {
			add(id)
		}
		for _, e := range emails {
			if id, ok := claims[e]; ok {
				add(id)
			} else {
				emails2 = append(emails2, e)
			}
		}
		return ids2, emails2
	}
	if err := read(false, ids, emails); err != nil {
		return nil, nil, err
	}
	if more, _ := missing(); len(more) > 0 {
		if err := read(false, more, nil); err != nil {
			return nil, nil, err
		}
	}
	if moreIDs, moreEmails := missing(); len(moreIDs)+len(moreEmails) > 0 {
		if err := read(true, moreIDs, moreEmails); err != nil {
			return nil, nil, err
		}
		if more, _ := missing(); len(more) > 0 {
			if err := read(true, more, nil); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, e := range emails {
		if u := byID[claims[e]]; u != nil {
			byEmail[e] = u
		}
	}
	return byID, byEmail, nil
}

// UsageWrite is a usage event to record, its user as read, and when the
// queue received its message (SentTimestamp; zero when unknown): the same
// on every delivery of the message.
type UsageWrite struct {
	Event *licadmin.UsageEvent
	User  *licadmin.User
	Sent  time.Time
}

// ClaimAge is how old an event may be when queued and still be written as
// its log entry alone: such an entry outlives every redelivery of its
// message (the shortest retention, 30 days, is longer than ClaimAge plus
// the 14 days SQS keeps a message), so that rewriting it is its own
// deduplication. An older event, or one whose queue time is unknown, is
// written as a claim (EventClaimTTL), whose INSERT puts the entry.
const ClaimAge = 15 * 24 * time.Hour

// RecordUsage writes usage events with BatchWriteItem, one item per event
// and no condition, in the user's log generation as read (which only
// grows: an entry of a generation that a remove or transfer ended
// meanwhile lands in a partition no read reaches, and the purge or its TTL
// deletes it). An event is its log entry, carrying what the monthly
// counters need; its key (user, generation, time, event id) is its
// deduplication: a redelivered event rewrites the same item, which is new
// (an INSERT on the table's stream, which usage.Recorder counts) only the
// first time. That holds while the entry exists and the generation is the
// same: the caller drops an event timed or queued before its user's
// LogSince (see usage.Ingester), and an event older than ClaimAge when
// queued is written as a claim keyed by user and event id in the user's
// usage partition instead, which remembers it for EventClaimTTL and whose
// INSERT has the recording function put the entry.
//
// The writes must not name one event twice (BatchWriteItem refuses a
// request with duplicate keys): the caller removes duplicates. It returns,
// per write, nil or why it could not be written (it is retried with
// backoff while DynamoDB leaves it unprocessed).
func (s *Store) RecordUsage(ctx context.Context, writes []UsageWrite, now time.Time) []error {
	errs := make([]error, len(writes))
	reqs := make([]types.WriteRequest, 0, len(writes))
	owner := map[string]int{} // item key -> write
	for i, w := range writes {
		entry := logEntry(w.Event, w.User)
		it := entry
		if w.Sent.IsZero() || w.Event.At.Before(w.Sent.Add(-ClaimAge)) {
			it = usageClaim(w.Event, w.User, entry, now)
		}
		if !keyFits(it) || !keyFits(entry) {
			errs[i] = licadmin.Errorf(licadmin.EINVALID, "usage event %s: its keys are too long", w.Event.ID)
			continue
		}
		owner[itemID(it)] = i
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
	}
	for start := 0; start < len(reqs); start += batchDeleteSize {
		left, err := s.batchWrite(ctx, reqs[start:min(start+batchDeleteSize, len(reqs))])
		for _, r := range left {
			if i := owner[itemID(r.PutRequest.Item)]; errs[i] == nil {
				errs[i] = fmt.Errorf("record usage event %s: %w", writes[i].Event.ID, err)
			}
		}
	}
	return errs
}

// WriteLogEntries puts log entries (CountedEvent.Entry) with
// BatchWriteItem, 25 at a time and logEntryWriters calls at once; putting
// one again rewrites the same item.
func (s *Store) WriteLogEntries(ctx context.Context, entries []Item) error {
	seen := map[string]bool{}
	reqs := make([]types.WriteRequest, 0, len(entries))
	for _, e := range entries {
		if id := itemID(e); !seen[id] {
			seen[id] = true
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: e}})
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, logEntryWriters)
	)
	for start := 0; start < len(reqs); start += batchDeleteSize {
		chunk := reqs[start:min(start+batchDeleteSize, len(reqs))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := s.batchWrite(ctx, chunk); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write log entries: %w", err)
	}
	return nil
}

// logEntryWriters is how many BatchWriteItem calls of log entries run at
// once: a stream batch of 1,000 claims is 40 calls.
const logEntryWriters = 4

// batchWrite sends reqs (at most 25) with BatchWriteItem, again with
// backoff while DynamoDB leaves some unprocessed, and returns those it
// gave up on with the reason.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
	pending := map[string][]types.WriteRequest{s.Table: reqs}
	for attempt := 0; len(pending[s.Table]) > 0; attempt++ {
		if attempt > 0 {
			if attempt > 5 {
				return pending[s.Table], licadmin.Errorf(licadmin.EUNAVAILABLE, "the table is busy; retry shortly")
			}
			if err := s.sleep(ctx, backoff(attempt)); err != nil {
				return pending[s.Table], err
			}
		}
		out, err := s.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return pending[s.Table], fmt.Errorf("batch write: %w", err)
		}
		pending = out.UnprocessedItems
	}
	return nil, nil
}

func itemID(it Item) string { return getS(it, attrPK) + "\x00" + getS(it, attrSK) }

// logEntry returns the log entry of ev, of user u as read, in u's log
// generation: what the log shows, and what the monthly counters add up
// (user, account, time, type, bytes), so that the stream's consumer works
// from the entry's INSERT alone. attrCounts marks the entries whose INSERT
// counts (entries put before it by the claim's consumer were counted from
// their claim).
func logEntry(ev *licadmin.UsageEvent, u *licadmin.User) Item {
	entry := mkKey(logPK(u.ID, u.LogGeneration), logSK(ev.At, ev.ID))
	entry["eventId"] = str(ev.ID)
	entry["accountId"] = str(ev.AccountID)
	entry["userId"] = str(u.ID)
	entry["type"] = str(string(ev.Type))
	entry["at"] = timestamp(ev.At)
	entry["messageRef"] = str(ev.MessageRef)
	recipients := make([]types.AttributeValue, len(ev.Recipients))
	for i, r := range ev.Recipients {
		recipients[i] = str(r)
	}
	entry["recipients"] = &types.AttributeValueMemberL{Value: recipients}
	entry["bytes"] = num(ev.Bytes)
	entry["ip"] = str(ev.IP)
	entry[attrTTL] = num(ev.At.Add(licadmin.Retention(u.License)).Unix())
	entry[attrCounts] = boolean(true)
	return entry
}

// attrCounts marks a log entry whose INSERT the monthly counters count.
const attrCounts = "counts"

// usageClaim returns the claim of an event with log entry entry: its key
// in the user's usage partition, its expiry and the entry ("entry", the
// item to put). The claim repeats none of the entry's attributes: DynamoDB's
// cost grows with its size.
func usageClaim(ev *licadmin.UsageEvent, u *licadmin.User, entry Item, now time.Time) Item {
	claim := eventKey(u.ID, ev.ID)
	claim[attrTTL] = num(now.Add(EventClaimTTL).Unix())
	claim["entry"] = &types.AttributeValueMemberM{Value: entry}
	return claim
}

// getM returns the map attribute name of it (nil when absent).
func getM(it Item, name string) Item {
	if m, ok := it[name].(*types.AttributeValueMemberM); ok {
		return m.Value
	}
	return nil
}

// ClaimedEntry returns the log entry to put for the new image of a usage
// event claim's INSERT, marked so that its own INSERT counts (claims of an
// earlier release carry it unmarked); nil when the image is not a claim.
func ClaimedEntry(it Item) Item {
	entry := getM(it, "entry")
	if ItemKind(it) != KindEventClaim || entry == nil || !keyFits(entry) {
		return nil
	}
	if _, ok := entry[attrCounts]; !ok {
		entry = maps.Clone(entry)
		entry[attrCounts] = boolean(true)
	}
	return entry
}

// CountedEvent is a usage event as the INSERT of its log entry tells it:
// what the monthly counters add up.
type CountedEvent struct {
	UserID, AccountID string
	// Generation is the entry's log generation: the stream orders the
	// records of one generation's partition only.
	Generation int64
	Type       licadmin.EventType
	At         time.Time
	Bytes      int64
}

// CountedEventFromImage decodes the new image of a log entry's INSERT;
// nil when the image is not an entry whose INSERT counts (entries an
// earlier release put from their claims were counted from the claims).
func CountedEventFromImage(it Item) *CountedEvent {
	if ItemKind(it) != KindLogEntry || !getBool(it, attrCounts) {
		return nil
	}
	gen, ok := logGeneration(getS(it, attrPK))
	t, err := licadmin.ParseEventType("type", getS(it, "type"))
	if !ok || err != nil || getS(it, "userId") == "" {
		return nil
	}
	return &CountedEvent{
		UserID: getS(it, "userId"), AccountID: getS(it, "accountId"), Generation: gen, Type: t,
		At: getTime(it, "at"), Bytes: getN(it, "bytes"),
	}
}

// UsageCount is what consecutive stream records of one user's log entries
// of one generation add to the user's counters of one month:
// FirstSequence and LastSequence are the sequence numbers of the first and
// last of those records.
type UsageCount struct {
	UserID, AccountID, Month    string
	Generation                  int64
	FirstSequence, LastSequence string
	licadmin.Counters
}

// ErrCounted means some of a UsageCount's records were already added to
// the counters: Through is the sequence number of the last record added.
type ErrCounted struct{ Through string }

func (e *ErrCounted) Error() string {
	return "usage already counted through stream sequence number " + e.Through
}

// AddUsageCount adds c to its user's counters of its month, with one
// UpdateItem on the condition that the counters hold no record of c's log
// generation at or after c.FirstSequence: the counter item keeps, per
// generation, the sequence number of the last record it counted
// (seqAttr). The table's stream delivers the records of one partition in
// order, and a generation's entries all live in one partition, so a
// redelivered record is never after the last one counted. When the
// condition fails it returns *ErrCounted with that sequence number: the
// caller counts again only the records after it, with after set to it
// (the update then requires exactly that sequence number, so that nothing
// counts twice).
func (s *Store) AddUsageCount(ctx context.Context, c UsageCount, after string) error {
	monthStart, err := time.Parse(licadmin.MonthLayout, c.Month)
	if err != nil {
		return fmt.Errorf("add usage count: month %q: %w", c.Month, err)
	}
	seq := seqAttr(c.Generation)
	e := newExpr()
	add := ""
	for _, f := range []struct {
		name string
		n    int64
	}{{"sent", c.Sent}, {"bytesSent", c.BytesSent}, {"opens", c.Opens}, {"downloads", c.Downloads}, {"signed", c.Signed}} {
		if f.n != 0 {
			add += ", " + e.n(f.name) + " " + e.v(num(f.n))
		}
	}
	update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s, %s = %s",
		e.n("accountId"), e.v(str(c.AccountID)),
		e.n("userId"), e.v(str(c.UserID)),
		e.n("month"), e.v(str(c.Month)),
		e.n(attrTTL), e.v(num(monthStart.AddDate(0, 1, 0).Add(licadmin.MaxRetention).Unix())),
		e.n(seq), e.v(str(padSequence(c.LastSequence))))
	if add != "" {
		update += " ADD " + add[2:]
	}
	var cond string
	if after == "" {
		cond = fmt.Sprintf("attribute_not_exists(%s) OR %s < %s", e.n(seq), e.n(seq), e.v(str(padSequence(c.FirstSequence))))
	} else {
		cond = fmt.Sprintf("%s = %s", e.n(seq), e.v(str(padSequence(after))))
	}
	_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &s.Table,
		Key:                                 statsKey(c.UserID, c.Month),
		UpdateExpression:                    &update,
		ConditionExpression:                 &cond,
		ExpressionAttributeNames:            e.namesOrNil(),
		ExpressionAttributeValues:           e.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return &ErrCounted{Through: strings.TrimLeft(getS(failed.Item, seq), "0")}
	}
	if err != nil {
		return fmt.Errorf("add usage count of %s %s: %w", c.UserID, c.Month, err)
	}
	return nil
}

// attrSeq is the last stream sequence number a search index marker
// applied.
const attrSeq = "seq"

// seqAttr names the counter item's attribute holding the sequence number
// of the last record of log generation gen it counted. ("seq" held the
// last claim's, when claims were counted.)
func seqAttr(gen int64) string { return "seq" + strconv.FormatInt(gen, 10) }

// padSequence writes a stream sequence number (decimal, up to 40 digits)
// on 40 digits, so that DynamoDB's string order is their numeric order.
func padSequence(seq string) string {
	seq = strings.TrimLeft(seq, "0")
	if len(seq) >= 40 {
		return seq
	}
	return strings.Repeat("0", 40-len(seq)) + seq
}

// SequenceAfter reports whether stream sequence number a comes after b
// (decimal numbers of up to 40 digits, beyond int64).
func SequenceAfter(a, b string) bool {
	x, okx := new(big.Int).SetString(a, 10)
	y, oky := new(big.Int).SetString(b, 10)
	if !okx || !oky {
		return padSequence(a) > padSequence(b)
	}
	return x.Cmp(y) > 0
}

// IsCounted returns err's *ErrCounted when some records were already
// counted.
func IsCounted(err error) (*ErrCounted, bool) {
	var c *ErrCounted
	ok := errors.As(err, &c)
	return c, ok
}

// decodeCounters reads the counters of a monthly usage item.
func decodeCounters(it Item) licadmin.Counters {
	return licadmin.Counters{
		Sent:      getN(it, "sent"),
		BytesSent: getN(it, "bytesSent"),
		Opens:     getN(it, "opens"),
		Downloads: getN(it, "downloads"),
		Signed:    getN(it, "signed"),
	}
}
