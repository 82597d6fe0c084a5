package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/licadmin"
)

// User search. Each user item carries the search key (licadmin.SearchKey)
// of its email, first name and last name, and each key is the sort key of
// its own global secondary index, partitioned by the account like GSI1. A
// search is three Queries of begins_with on those keys, whose answers are
// merged in key order (searchUsers).
//
// Why indexes on the user item rather than index items of our own written
// in each change's transaction: DynamoDB keeps a GSI in step with every
// write of the item, so no code path (create, edit, email change, delete,
// the import's chunks, anything added later) can forget the index, and no
// transaction names an extra item. Index items would cost three more
// items per user in every transaction that creates or renames one: the
// import's chunk would hold 19 rows instead of 48 (five items a row instead
// of two), and a bulk license change, which must filter by license, would
// have to rewrite each user's three index items too. What the indexes cost
// instead is one write unit per index each time a user item changes
// (projection ALL, so that a search returns whole users in one round trip,
// like the plain list) and eventually consistent reads: a user created a
// moment ago may be missing from a search for a fraction of a second,
// never from the plain list. docs/design.md gives the measured figures.

// searchAttrs are the search key attributes, each also the name of its
// index; between equal keys, the merge takes them in this order.
var searchAttrs = []string{GSISearchEmail, GSISearchFirstName, GSISearchLastName}

// searchKeys returns the search key of each of u's searched fields, by
// attribute name; an empty key is left off the item (a GSI key cannot be
// empty) and such a user is simply not found by that field.
func searchKeys(u *licadmin.User) map[string]string {
	return map[string]string{
		GSISearchEmail:     licadmin.SearchKey(u.Email),
		GSISearchFirstName: licadmin.SearchKey(u.FirstName),
		GSISearchLastName:  licadmin.SearchKey(u.LastName),
	}
}

// maxSearchRounds bounds the rounds of Queries of one search page: a page
// reads at most maxSearchRounds × len(searchAttrs) Queries of at most
// limit+1 items each (at least 100 with a filter, so at most 201), and
// ends early (a short page, with a cursor) rather than read more.
const maxSearchRounds = 3

// searchQueryLimit is the Limit of one search Query for a page of limit
// users of which found are found already: what the page lacks and one
// more, so that a page drawn from one index needs a single round. With a
// license or status filter, which drops some of the items evaluated, at
// least 100.
func searchQueryLimit(limit, found int, f licadmin.UserFilter) int32 {
	n := limit - found + 1
	if f.License != "" || f.Status != "" {
		n = max(n, 100)
	}
	return int32(n)
}

// searchStream is one index's part of a search page: the items read and
// not yet taken, and where the index is read from next.
type searchStream struct {
	attr string
	buf  []Item
	// from is the position after the last item taken (nil: the start).
	from Item
	// next is where the next Query starts (its ExclusiveStartKey), and
	// more whether items may remain there.
	next Item
	more bool
	// read tells that the index was read for this page, and readTo the
	// key up to which it was: every item of a smaller key was read.
	read   bool
	readTo string
}

// head returns the sort key of the first item read and not taken.
func (st *searchStream) head() string { return getS(st.buf[0], st.attr) }

// position returns where the next page resumes this stream: after the last
// item taken, or where the next Query would start when every item read was
// taken; nil when the stream is exhausted.
func (st *searchStream) position() Item {
	switch {
	case len(st.buf) > 0:
		if st.from == nil {
			return Item{}
		}
		return st.from
	case st.more:
		if st.next == nil {
			return Item{}
		}
		return st.next
	}
	return nil
}

// searchReadOrder is the order the indexes are read in a round: the first
// name, the last name, then the email (indexes into searchAttrs). A name
// is often the prefix typed, whole, so the smallest keys, which fill the
// page, are most often there; the others are then read only up to the
// last key the first one returned.
var searchReadOrder = []int{1, 2, 0}

// searchUsers returns up to limit users of the account whose email, first
// name or last name has the search key prefix f.Search (and who pass f's
// license and status filters), ordered by the matching key, and the
// position after them (nil at the end). Found by several fields, a user is
// returned once, where its smallest matching key sorts.
//
// The three indexes are read and merged: a user is taken only when no
// index can still hold a smaller key, which the last key each Query
// evaluated tells even when the filter dropped the items. A round reads
// the first index of searchReadOrder that needs reading, then the others
// at once, each only up to the smallest key that an index read so far
// stopped at: the merge could not take more this page. The first round
// reads the three at once, the first a page and the others a few items,
// which mostly show that their keys sort after the page: a page whose
// users come from one index then costs one round trip of three Queries and
// reads a quarter more items than the plain list. When a page is not full after maxSearchRounds
// rounds, it ends early with a position, so that every request reads a
// bounded number of items; a page may then be short, even empty, and
// still have a next one.
func (s *Store) searchUsers(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]*licadmin.User, []byte, error) {
	gsiPK := usersGSI1PK(accountID)
	streams, err := decodeSearchPosition(after, gsiPK)
	if err != nil {
		return nil, nil, err
	}
	var users []*licadmin.User
	for round := 0; round < maxSearchRounds; round++ {
		if err := s.readRound(ctx, gsiPK, f, searchQueryLimit(limit, len(users), f), streams, round == 0); err != nil {
			return nil, nil, err
		}
		users = takeSearched(streams, f.Search, limit, users)
		if len(users) == limit || !needsRead(streams) {
			break
		}
	}
	return users, encodeSearchPosition(streams), nil
}

// needsRead reports whether a stream has nothing read left and more to read.
func needsRead(streams []*searchStream) bool {
	for _, st := range streams {
		if len(st.buf) == 0 && st.more {
			return true
		}
	}
	return false
}

// readRound reads each stream that has nothing read left and more to
// read. The first round reads them all at once: the first in
// searchReadOrder n items, the others an eighth of that (all n with a
// filter). A later round reads the first alone, then the others at once,
// each up to the bound the streams read so far set (searchBound).
func (s *Store) readRound(ctx context.Context, gsiPK string, f licadmin.UserFilter, n int32, streams []*searchStream, first bool) error {
	var todo []*searchStream
	for _, i := range searchReadOrder {
		if st := streams[i]; len(st.buf) == 0 && st.more {
			todo = append(todo, st)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(todo))
	reads := make([]func(), len(todo))
	if first {
		// All at once, the others a few items each: enough, when the page
		// comes from the first, to show that their keys sort after it.
		few := n
		if f.License == "" && f.Status == "" {
			few = min(n, max(2, (n+7)/8))
		}
		for i, st := range todo {
			m := few
			if i == 0 {
				m = n
			}
			reads[i] = func() { errs[i] = s.readStreamTo(ctx, gsiPK, f, m, st, "", false) }
		}
	} else {
		if err := s.readStream(ctx, gsiPK, f, n, todo[0], streams); err != nil {
			return err
		}
		for i, st := range todo[1:] {
			bound, ok := searchBound(streams, st)
			if ok && st.read && bound <= st.readTo {
				continue // read far enough for this page already
			}
			reads[i] = func() { errs[i] = s.readStreamTo(ctx, gsiPK, f, n, st, bound, ok) }
		}
	}
	for _, read := range reads {
		if read != nil {
			wg.Go(read)
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// searchBound returns the smallest key up to which another stream than st
// was read and may hold more: the merge cannot take past it this page, so
// st need not be read past it either; false when no stream sets a bound.
func searchBound(streams []*searchStream, st *searchStream) (string, bool) {
	bound, ok := "", false
	for _, o := range streams {
		if o != st && o.read && o.more && (!ok || o.readTo < bound) {
			bound, ok = o.readTo, true
		}
	}
	return bound, ok
}

// readStream reads st up to the bound the other streams set.
func (s *Store) readStream(ctx context.Context, gsiPK string, f licadmin.UserFilter, n int32, st *searchStream, streams []*searchStream) error {
	bound, ok := searchBound(streams, st)
	return s.readStreamTo(ctx, gsiPK, f, n, st, bound, ok)
}

// readStreamTo sends the Query of st: at most n items from st.next whose
// key starts with the search, and when bounded, is at most bound (which
// itself starts with the search, so that BETWEEN search AND bound holds
// exactly those keys).
func (s *Store) readStreamTo(ctx context.Context, gsiPK string, f licadmin.UserFilter, n int32, st *searchStream, bound string, bounded bool) error {
	if at := getS(st.next, st.attr); bounded && st.next != nil && at > bound {
		// Read past bound on an earlier page already (and DynamoDB
		// refuses a start key outside the key condition).
		st.buf, st.read, st.readTo = nil, true, at
		return nil
	}
	e := newExpr()
	keyCond := fmt.Sprintf("%s = %s AND ", e.n(attrGSI1PK), e.v(str(gsiPK)))
	if bounded {
		keyCond += fmt.Sprintf("%s BETWEEN %s AND %s", e.n(st.attr), e.v(str(f.Search)), e.v(str(bound)))
	} else {
		keyCond += fmt.Sprintf("begins_with(%s, %s)", e.n(st.attr), e.v(str(f.Search)))
	}
	in := &dynamodb.QueryInput{
		TableName:              &s.Table,
		IndexName:              aws.String(st.attr),
		KeyConditionExpression: &keyCond,
		FilterExpression:       userFilter(e, f),
		ExclusiveStartKey:      st.next,
		Limit:                  aws.Int32(n),
	}
	in.ExpressionAttributeNames, in.ExpressionAttributeValues = e.names, e.values
	out, err := s.DB.Query(ctx, in)
	if err != nil {
		return fmt.Errorf("search users by %s: %w", st.attr, err)
	}
	st.buf, st.read = out.Items, true
	switch {
	case out.LastEvaluatedKey != nil:
		st.next, st.readTo = out.LastEvaluatedKey, getS(out.LastEvaluatedKey, st.attr)
	case bounded:
		// Everything up to bound is read; more may follow it.
		if len(out.Items) > 0 {
			st.next = searchKeyOf(out.Items[len(out.Items)-1], st.attr)
		}
		st.readTo = bound
	default:
		st.more = false
	}
	if len(out.Items) == 0 {
		st.from = st.next
	}
	return nil
}

// takeSearched appends to users, in key order, the items of streams that
// no stream can precede any more, until the page holds limit users or an
// exhausted buffer blocks the merge. An item whose user another index
// returns (foundFirstBy) is taken without being returned: the merge met
// that user already, so every item taken is one user returned or one of
// its other two entries, and a round of full buffers fills a page. When
// the page is full, such items are still taken, so that a page ending
// with them needs no empty next page.
func takeSearched(streams []*searchStream, prefix string, limit int, users []*licadmin.User) []*licadmin.User {
	for {
		i := -1
		for j, st := range streams {
			if len(st.buf) > 0 && (i < 0 || st.head() < streams[i].head()) {
				i = j
			}
		}
		if i < 0 {
			return users
		}
		m := streams[i].head()
		for _, st := range streams {
			// Nothing read left, more to read: its next key may sort
			// before m.
			if len(st.buf) == 0 && st.more && (!st.read || st.readTo < m) {
				return users
			}
		}
		st := streams[i]
		it := st.buf[0]
		dup := foundFirstBy(it, prefix) != st.attr
		if len(users) == limit && !dup {
			return users
		}
		st.buf = st.buf[1:]
		st.from = searchKeyOf(it, st.attr)
		if len(st.buf) == 0 && st.more {
			st.from = st.next
		}
		if !dup {
			users = append(users, decodeUser(it))
		}
	}
}

// foundFirstBy returns the attribute whose index a user item is returned
// from: of its search keys that start with prefix, the smallest, the first
// in searchAttrs order among equal ones. The merge meets the user there
// first, so the other indexes' entries, met later, are only taken.
func foundFirstBy(it Item, prefix string) string {
	first, min := "", ""
	for _, attr := range searchAttrs {
		k := getS(it, attr)
		if strings.HasPrefix(k, prefix) && (first == "" || k < min) {
			first, min = attr, k
		}
	}
	return first
}

// searchKeyOf returns the key of an item in the index of attr: the table's
// key and the index's.
func searchKeyOf(it Item, attr string) Item {
	return Item{attrPK: it[attrPK], attrSK: it[attrSK], attrGSI1PK: it[attrGSI1PK], attr: it[attr]}
}

// A search position is, per index in searchAttrs order, null when the index
// is exhausted, [] to read it from the start, or the [pk, sk, gsi1pk, key]
// of the index item to read it after.
type searchPosition struct {
	Streams [][]string `json:"search"`
}

func encodeSearchPosition(streams []*searchStream) []byte {
	var p searchPosition
	done := true
	for _, st := range streams {
		pos := st.position()
		if pos == nil {
			p.Streams = append(p.Streams, nil)
			continue
		}
		done = false
		if len(pos) == 0 {
			p.Streams = append(p.Streams, []string{})
			continue
		}
		p.Streams = append(p.Streams, []string{getS(pos, attrPK), getS(pos, attrSK), getS(pos, attrGSI1PK), getS(pos, st.attr)})
	}
	if done {
		return nil
	}
	b, _ := json.Marshal(p)
	return b
}

// decodeSearchPosition returns the streams of a search page that starts at
// b (nil: the first page). A position of another account or list is
// refused.
func decodeSearchPosition(b []byte, gsiPK string) ([]*searchStream, error) {
	streams := make([]*searchStream, len(searchAttrs))
	for i, attr := range searchAttrs {
		streams[i] = &searchStream{attr: attr, more: true}
	}
	if len(b) == 0 {
		return streams, nil
	}
	invalid := licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
	var p searchPosition
	if err := json.Unmarshal(b, &p); err != nil || len(p.Streams) != len(searchAttrs) {
		return nil, invalid
	}
	for i, k := range p.Streams {
		st := streams[i]
		switch {
		case k == nil:
			st.more = false
		case len(k) == 0:
		case len(k) == 4 && k[2] == gsiPK:
			st.from = Item{attrPK: str(k[0]), attrSK: str(k[1]), attrGSI1PK: str(k[2]), st.attr: str(k[3])}
			st.next = st.from
		default:
			return nil, invalid
		}
	}
	return streams, nil
}
