package store

import (
	"context"
	"errors"
	"fmt"
	"math/big"
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
		items, err := s.batchGetAll(ctx, keys, consistent)
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

// batchGetAll reads keys with BatchGetItem, 100 at a time, consistently
// or not; absent items are left out.
func (s *Store) batchGetAll(ctx context.Context, keys []key, consistent bool) ([]Item, error) {
	var items []Item
	for start := 0; start < len(keys); start += maxBatchGetKeys {
		got, err := s.batchGetRead(ctx, keys[start:min(start+maxBatchGetKeys, len(keys))], consistent)
		if err != nil {
			return nil, err
		}
		items = append(items, got...)
	}
	return items, nil
}

// maxBatchGetKeys is BatchGetItem's limit.
const maxBatchGetKeys = 100

// UsageWrite is a usage event to record and its user as read.
type UsageWrite struct {
	Event *licadmin.UsageEvent
	User  *licadmin.User
}

// RecordUsage writes usage events with BatchWriteItem, two items each and
// no condition: the event's claim, keyed by account and event id, and its
// log entry in the user's log generation as read, keyed by user,
// generation, time and event id. A redelivered event rewrites the same two
// items, so it is one entry and its claim is new (an INSERT on the table's
// stream) only the first time: the monthly counters count claims' INSERTs
// (usage.Counter), not writes. An entry written into a generation that a
// remove or transfer ended meanwhile is in a partition no read reaches
// (reads use the user's current generation, which only grows); the purge
// or its TTL deletes it.
//
// The writes must not name one event twice (BatchWriteItem refuses a
// request with duplicate keys): the caller removes duplicates. It returns,
// per write, nil or why its items could not all be written (they are
// retried with backoff while DynamoDB leaves them unprocessed).
func (s *Store) RecordUsage(ctx context.Context, writes []UsageWrite, now time.Time) []error {
	errs := make([]error, len(writes))
	reqs := make([]types.WriteRequest, 0, 2*len(writes))
	owner := map[string]int{} // item key -> write
	for i, w := range writes {
		claim, entry := usageItems(w.Event, w.User, now)
		for _, it := range []Item{claim, entry} {
			if !keyFits(it) {
				errs[i] = licadmin.Errorf(licadmin.EINVALID, "usage event %s: its keys are too long", w.Event.ID)
				break
			}
		}
		if errs[i] != nil {
			continue
		}
		owner[itemID(claim)], owner[itemID(entry)] = i, i
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: claim}},
			types.WriteRequest{PutRequest: &types.PutRequest{Item: entry}})
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

// usageItems returns the claim and the log entry of ev, of user u as read.
// The claim carries what the monthly counters need (user, time, type,
// bytes), so that the stream consumer counts from it alone.
func usageItems(ev *licadmin.UsageEvent, u *licadmin.User, now time.Time) (claim, entry Item) {
	claim = eventKey(ev.AccountID, ev.ID)
	claim["accountId"] = str(ev.AccountID)
	claim["userId"] = str(u.ID)
	claim["at"] = timestamp(ev.At)
	claim["type"] = str(string(ev.Type))
	claim["bytes"] = num(ev.Bytes)
	claim[attrTTL] = num(now.Add(EventClaimTTL).Unix())

	entry = mkKey(logPK(u.ID, u.LogGeneration), logSK(ev.At, ev.ID))
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
	return claim, entry
}

// CountedEvent is a usage event as its claim's INSERT on the table's
// stream tells it: what the monthly counters add up.
type CountedEvent struct {
	UserID    string
	AccountID string
	Type      licadmin.EventType
	At        time.Time
	Bytes     int64
}

// CountedEventFromImage decodes the new image of a claim's INSERT; nil
// when the image is not a usage event claim.
func CountedEventFromImage(it Item) *CountedEvent {
	if ItemKind(it) != KindEventClaim {
		return nil
	}
	t, err := licadmin.ParseEventType("type", getS(it, "type"))
	if err != nil || getS(it, "userId") == "" {
		return nil
	}
	return &CountedEvent{
		UserID: getS(it, "userId"), AccountID: getS(it, "accountId"), Type: t,
		At: getTime(it, "at"), Bytes: getN(it, "bytes"),
	}
}

// UsageCount is what a run of stream records adds to one user's counters
// of one month.
type UsageCount struct {
	UserID, AccountID, Month string
	licadmin.Counters
}

// UsageCountRun is a run of consecutive records of one stream shard whose
// counts are added at once: FirstEventID is the first record's event id
// (globally unique), LastSequence the last record's sequence number.
type UsageCountRun struct {
	FirstEventID string
	LastSequence string
	Counts       []UsageCount
}

// MaxUsageCountsPerRun is how many users' months one run may add to: a
// transaction holds 100 items, one of which is the run's marker.
const MaxUsageCountsPerRun = 99

// CountedRunTTL bounds a run marker's life: longer than the table's
// stream keeps a record (24 hours), so that any redelivery finds it.
const CountedRunTTL = 48 * time.Hour

// ErrRunCounted means a run of stream records was already added to the
// counters; LastSequence is the last record that run covered.
type ErrRunCounted struct{ LastSequence string }

func (e *ErrRunCounted) Error() string {
	return "these stream records were already counted, up to sequence number " + e.LastSequence
}

// AddUsageCounts adds a run's counts to the users' monthly counters in one
// transaction with the run's marker, put on the condition that it does
// not exist: a redelivered run (the stream function retried, a lost
// answer) adds nothing and returns *ErrRunCounted with the sequence number
// its first delivery counted up to.
func (s *Store) AddUsageCounts(ctx context.Context, run UsageCountRun, now time.Time) error {
	if len(run.Counts) > MaxUsageCountsPerRun {
		return fmt.Errorf("add usage counts: %d users' months in one run, at most %d", len(run.Counts), MaxUsageCountsPerRun)
	}
	t := &txn{}
	marker := countedRunKey(run.FirstEventID)
	marker["lastSequence"] = str(run.LastSequence)
	marker[attrTTL] = num(now.Add(CountedRunTTL).Unix())
	me := newExpr()
	t.put(s.Table, marker, fmt.Sprintf("attribute_not_exists(%s)", me.n(attrPK)), me, func(old Item) error {
		return &ErrRunCounted{LastSequence: getS(old, "lastSequence")}
	})
	for _, c := range run.Counts {
		se := newExpr()
		add := ""
		for _, f := range []struct {
			name string
			n    int64
		}{{"sent", c.Sent}, {"bytesSent", c.BytesSent}, {"opens", c.Opens}, {"downloads", c.Downloads}, {"signed", c.Signed}} {
			if f.n == 0 {
				continue
			}
			if add != "" {
				add += ", "
			}
			add += se.n(f.name) + " " + se.v(num(f.n))
		}
		if add == "" {
			continue
		}
		monthStart, err := time.Parse(licadmin.MonthLayout, c.Month)
		if err != nil {
			return fmt.Errorf("add usage counts: month %q: %w", c.Month, err)
		}
		update := fmt.Sprintf("SET %s = %s, %s = %s, %s = %s, %s = %s ADD %s",
			se.n("accountId"), se.v(str(c.AccountID)),
			se.n("userId"), se.v(str(c.UserID)),
			se.n("month"), se.v(str(c.Month)),
			se.n(attrTTL), se.v(num(monthStart.AddDate(0, 1, 0).Add(licadmin.MaxRetention).Unix())),
			add)
		t.update(s.Table, statsKey(c.UserID, c.Month), update, "", se, nil)
	}
	return s.transact(ctx, t)
}

// SequenceAfter reports whether stream sequence number a comes after b
// (they are decimal numbers of up to 40 digits, beyond int64).
func SequenceAfter(a, b string) bool {
	x, okx := new(big.Int).SetString(a, 10)
	y, oky := new(big.Int).SetString(b, 10)
	if !okx || !oky {
		return a > b
	}
	return x.Cmp(y) > 0
}

// IsRunCounted returns the run's marker error when err says the run was
// already counted.
func IsRunCounted(err error) (*ErrRunCounted, bool) {
	var c *ErrRunCounted
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
