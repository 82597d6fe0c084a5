package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/licadmin"
)

// User search. Each user has one search index item per searched field
// (email, first name, last name) whose search key (licadmin.SearchKey) is
// not empty:
//
//	pk  SEARCH#<accountId>#<first character of the key>
//	sk  <key> \x01 <field code> \x01 <userId>
//
// carrying the user's view (its JSON as the API returns it, which a page
// returns without decoding), its tier and status (the list's filters),
// and the sort string (<key> \x01 <code>) of each of the user's three
// fields. A search is then one Query of begins_with on one partition, of
// which, of a user's entries that match, only the one of the smallest
// sort string is kept (searchFirst): each user is returned once, where
// its smallest matching key sorts, decided per item without another read. The separator \x01, which no
// search key holds (SearchKey drops control characters), sorts before
// every character, so the index's order is the keys' order.
//
// The partitions are split by the key's first character so that one
// account's users (an import of 100,000) spread over some thirty partition
// keys; a search text always names its partition.
//
// The index items are written from the table's stream (ApplySearchIndex,
// called by the stream function for every change of a user item): no code
// path that writes users (create, edit, email change, delete, the import's
// chunks, license changes, activation) can forget them, and no transaction
// of a request names them. The stream's lag makes the index eventually
// consistent, as a global secondary index is. docs/design.md says why this
// replaced three GSIs (a search was three Queries) and what it costs.

// Search index layout.
const (
	searchPKPrefix = "SEARCH#"
	searchSep      = "\x01"
	// skSearchMarker keys, in a partition of its own (SEARCH#<userId>,
	// which no entry's two-part key can equal), the marker that records
	// the last stream record applied to the user's entries. Not in the
	// user's partition: the marker outlives the user, whose partition a
	// deletion purges.
	skSearchMarker = "MARKER"
	// attrSearchView holds, on an index entry, the user as the API shows
	// it (searchView), and attrSearchViewVer the searchViewVersion it was
	// written for.
	attrSearchView    = "view"
	attrSearchViewVer = "viewVersion"
)

// searchViewVersion names the encoding of the users' views (the JSON of
// licadmin.User). Change it with that JSON (TestSearchViewVersion fails
// until then): entries written for another version (by an older release,
// or by no version at all) are answered from their users' items instead,
// until the stream rewrites them with the user's next change.
const searchViewVersion = 1

// searchField is one searched field of a user.
type searchField struct {
	code string
	// attr holds, on every index item of the user, this field's sort
	// string (absent when its key is empty).
	attr  string
	value func(*licadmin.User) string
}

var searchFields = []searchField{
	{"e", "searchEmail", func(u *licadmin.User) string { return u.Email }},
	{"f", "searchFirstName", func(u *licadmin.User) string { return u.FirstName }},
	{"l", "searchLastName", func(u *licadmin.User) string { return u.LastName }},
}

// searchPK is the partition of the index items whose key starts as key.
func searchPK(accountID, key string) string {
	r, _ := utf8.DecodeRuneInString(key)
	return searchPKPrefix + accountID + "#" + string(r)
}

func searchMarkerKey(userID string) key { return mkKey(searchPKPrefix+userID, skSearchMarker) }

// searchItems derives the index items of u (none for nil): what the table
// holds for u once the stream has applied its last change. An entry holds
// what the Query reads (the keys, the three sort strings, and tier and
// status for the list's filters) and the user's view: the user encoded as
// the API shows it, which a search page returns without decoding it.
func searchItems(u *licadmin.User) []Item {
	if u == nil {
		return nil
	}
	base := Item{
		"status":          str(string(u.Status)),
		attrSearchView:    str(string(searchView(u))),
		attrSearchViewVer: num(searchViewVersion),
	}
	if u.License != nil {
		base["tier"] = str(string(u.License.Tier))
	}
	keys := make([]string, len(searchFields))
	for i, f := range searchFields {
		keys[i] = licadmin.SearchKey(f.value(u))
		if keys[i] != "" {
			base[f.attr] = str(keys[i] + searchSep + f.code)
		}
	}
	var items []Item
	for i, f := range searchFields {
		if keys[i] == "" {
			continue
		}
		it := make(Item, len(base)+2)
		for k, v := range base {
			it[k] = v
		}
		it[attrPK] = str(searchPK(u.AccountID, keys[i]))
		it[attrSK] = str(keys[i] + searchSep + f.code + searchSep + u.ID)
		items = append(items, it)
	}
	return items
}

// searchView is u as the API shows it, in a list as everywhere: the bytes
// json.Marshal gives, which an index entry holds for searchViewVersion.
func searchView(u *licadmin.User) []byte {
	b, err := json.Marshal(u)
	if err != nil {
		panic(fmt.Sprintf("encode user %s: %v", u.ID, err)) // a User always encodes
	}
	return b
}

// searchEntry returns the field code and the user id of an index entry's
// sort key (<key> \x01 <field code> \x01 <userId>; no key holds \x01).
func searchEntry(it Item) (field, userID string) {
	_, rest, _ := strings.Cut(getS(it, attrSK), searchSep)
	field, userID, _ = strings.Cut(rest, searchSep)
	return field, userID
}

// SearchIndexItems returns the search index items of a user item, as the
// stream function writes them (the benchmark writes them directly, since
// waiting for the stream would take minutes).
func SearchIndexItems(userItem Item) []Item { return searchItems(decodeUser(userItem)) }

// SearchChange is what the stream records of one user in one batch do to
// its search index: Seen holds the user of every old and new image of
// those records (nil for none; the index may hold the entries of any of
// them), Final the user after the last record (nil when it deleted the
// user) and Sequence that record's stream sequence number.
type SearchChange struct {
	UserID   string
	Sequence string
	Seen     []*licadmin.User
	Final    *licadmin.User
}

// searchMarkerTTL keeps a deleted user's marker past the stream's 24-hour
// retention, so that no redelivered record can bring its entries back.
const searchMarkerTTL = 48 * time.Hour

// ApplySearchIndex brings the user's index items to c.Final's: it puts
// them and deletes those of the other images' keys, in one transaction
// (more when it would name over 100 items) with the user's marker, on the
// condition that the marker has applied no later record. A record
// redelivered after a later one was applied changes nothing; one
// redelivered after itself rewrites the same items. The table's stream
// delivers a user's records in order, and the stream function reports a
// failed user's first record so that Lambda delivers it and every later
// one again: the index items present are always those of the marker's
// record, whose user is among c.Seen (the first record's old image is). Changes that leave the items as they were (an activation email's
// rate limit) write nothing.
func (s *Store) ApplySearchIndex(ctx context.Context, c SearchChange, now time.Time) error {
	final := searchItems(c.Final)
	keep := map[[2]string]bool{}
	for _, it := range final {
		keep[[2]string{getS(it, attrPK), getS(it, attrSK)}] = true
	}
	var deletes []key
	same := true
	for _, u := range c.Seen {
		items := searchItems(u)
		same = same && reflect.DeepEqual(items, final)
		for _, it := range items {
			k := [2]string{getS(it, attrPK), getS(it, attrSK)}
			if !keep[k] {
				keep[k] = true // once
				deletes = append(deletes, mkKey(k[0], k[1]))
			}
		}
	}
	if same {
		return nil
	}
	// The marker is in every transaction, so each carries the condition.
	const perTxn = MaxTxnItems - 1
	var ops []func(t *txn)
	for _, it := range final {
		ops = append(ops, func(t *txn) { t.put(s.Table, it, "", nil, nil) })
	}
	for _, k := range deletes {
		ops = append(ops, func(t *txn) { t.delete(s.Table, k, "", nil, nil) })
	}
	for from := 0; from == 0 || from < len(ops); from += perTxn {
		t := &txn{}
		e := newExpr()
		update := fmt.Sprintf("SET %s = %s", e.n(attrSeq), e.v(str(padSequence(c.Sequence))))
		if c.Final == nil {
			update += fmt.Sprintf(", %s = %s", e.n(attrTTL), e.v(num(now.Add(searchMarkerTTL).Unix())))
		} else {
			update += " REMOVE " + e.n(attrTTL)
		}
		cond := fmt.Sprintf("attribute_not_exists(%s) OR %s <= %s", e.n(attrSeq), e.n(attrSeq), e.v(str(padSequence(c.Sequence))))
		t.update(s.Table, searchMarkerKey(c.UserID), update, cond, e, func(Item) error { return errSearchApplied })
		for _, op := range ops[from:min(len(ops), from+perTxn)] {
			op(t)
		}
		err := s.transact(ctx, t)
		if errors.Is(err, errSearchApplied) {
			return nil // a later record was applied already
		}
		if err != nil {
			return fmt.Errorf("search index of user %s: %w", c.UserID, err)
		}
	}
	return nil
}

// errSearchApplied is the marker's failed condition: a later record of
// the user was applied.
var errSearchApplied = errors.New("search index: a later stream record was applied")

// searchQuery returns the Query of the users of the account found by
// f.Search, from the position after (nil: the first page). One Query of
// one partition: its key condition selects the entries whose key starts
// with the search, its filter f's license and status; ListUsers keeps, of
// a user's entries, the first (searchFirst).
func (s *Store) searchQuery(accountID string, f licadmin.UserFilter, after []byte) (*dynamodb.QueryInput, error) {
	pk := searchPK(accountID, f.Search)
	from, err := decodeSearchPosition(after, pk, f.Search)
	if err != nil {
		return nil, err
	}
	e := newExpr()
	keyCond := fmt.Sprintf("%s = %s AND begins_with(%s, %s)", e.n(attrPK), e.v(str(pk)), e.n(attrSK), e.v(str(f.Search)))
	return &dynamodb.QueryInput{
		TableName:                 &s.Table,
		KeyConditionExpression:    &keyCond,
		FilterExpression:          userFilter(e, f),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ExclusiveStartKey:         from,
	}, nil
}

// searchFirst reports whether an index item is its user's first entry
// found by prefix: no other field of the user whose key also starts with
// prefix has a smaller sort string. SearchUsers skips the others, so that
// a user found by several fields is returned once. Decided here rather
// than in the Query's filter: DynamoDB Local evaluates such a filter
// slowly, and the entries skipped are few.
func searchFirst(it Item, prefix string) bool {
	field, _ := searchEntry(it)
	var own string
	for _, f := range searchFields {
		if f.code == field {
			own = getS(it, f.attr)
		}
	}
	for _, g := range searchFields {
		if k := getS(it, g.attr); g.code != field && k != "" && strings.HasPrefix(k, prefix) && k < own {
			return false
		}
	}
	return true
}

// SearchUsers returns up to limit users of an account found by f.Search
// (not empty), in the order of their matching key, from the position
// after (nil for the first page), and the position to continue from, nil
// when there are no more; as ListUsers does for the plain list, and with
// the same bounds. Each user is returned as the API shows it, the bytes
// json.Marshal gives for its licadmin.User: the index entry's view, not
// decoded, or, for an entry written for another searchViewVersion, the
// user read from its item (a user deleted since is left out).
func (s *Store) SearchUsers(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]json.RawMessage, []byte, error) {
	if f.Search == "" {
		return nil, nil, errors.New("search users: no search text")
	}
	in, err := s.searchQuery(accountID, f, after)
	if err != nil {
		return nil, nil, err
	}
	var entries []Item
	next, err := s.queryUsers(ctx, in, f, limit, encodeSearchPosition, func(it Item) bool {
		if !searchFirst(it, f.Search) {
			return false // the user's entry of a smaller key is returned
		}
		entries = append(entries, it)
		return true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("search users of %s: %w", accountID, err)
	}
	views, err := s.searchViews(ctx, accountID, entries)
	if err != nil {
		return nil, nil, fmt.Errorf("search users of %s: %w", accountID, err)
	}
	return views, next, nil
}

// searchViews returns the views of the users of entries, in their order:
// each entry's own, or, for those written for another searchViewVersion,
// the view of the user item, read with one BatchGetItem (per 100).
func (s *Store) searchViews(ctx context.Context, accountID string, entries []Item) ([]json.RawMessage, error) {
	views := make([]json.RawMessage, len(entries))
	var stale []key
	for i, it := range entries {
		if getN(it, attrSearchViewVer) == searchViewVersion {
			if v := getS(it, attrSearchView); v != "" {
				views[i] = json.RawMessage(v)
				continue
			}
		}
		_, id := searchEntry(it)
		stale = append(stale, userKey(id))
	}
	if len(stale) == 0 {
		return views, nil
	}
	items, err := s.batchGetRead(ctx, stale, false)
	if err != nil {
		return nil, fmt.Errorf("read users of outdated index entries: %w", err)
	}
	users := make(map[string]*licadmin.User, len(items))
	for _, it := range items {
		if u := decodeUser(it); u != nil && u.AccountID == accountID {
			users[u.ID] = u
		}
	}
	out := make([]json.RawMessage, 0, len(entries))
	for i, it := range entries {
		if views[i] == nil {
			_, id := searchEntry(it)
			u := users[id]
			if u == nil {
				continue // deleted since: its entries go with the stream
			}
			views[i] = searchView(u)
		}
		out = append(out, views[i])
	}
	return out, nil
}

// encodeSearchPosition returns the key of an index item as bytes;
// decodeSearchPosition turns them back into an ExclusiveStartKey, refusing
// a position of another account or search.
func encodeSearchPosition(it Item) []byte {
	b, _ := json.Marshal([2]string{getS(it, attrPK), getS(it, attrSK)})
	return b
}

func decodeSearchPosition(b []byte, pk, prefix string) (Item, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var k [2]string
	if err := json.Unmarshal(b, &k); err != nil || k[0] != pk || !strings.HasPrefix(k[1], prefix) {
		return nil, licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
	}
	return Item{attrPK: str(k[0]), attrSK: str(k[1])}, nil
}
