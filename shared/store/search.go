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
// carrying the user as the plain list returns it, and the sort string
// (<key> \x01 <code>) of each of the user's three fields. A search is then
// one Query of begins_with on one partition, of which, of a user's
// entries that match, only the one of the smallest sort string is kept
// (searchFirst): each user is returned once, where its smallest matching key sorts,
// decided per item without another read. The separator \x01, which no
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
	// attrSearchField names the field an index item is the entry of.
	attrSearchField = "searchField"
)

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
// holds for u once the stream has applied its last change.
func searchItems(u *licadmin.User) []Item {
	if u == nil {
		return nil
	}
	base := userItem(u)
	delete(base, attrGSI1PK) // not in the account's user list
	delete(base, attrGSI1SK)
	delete(base, "logGen")
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
		it := make(Item, len(base)+3)
		for k, v := range base {
			it[k] = v
		}
		it[attrPK] = str(searchPK(u.AccountID, keys[i]))
		it[attrSK] = str(keys[i] + searchSep + f.code + searchSep + u.ID)
		it[attrSearchField] = str(f.code)
		items = append(items, it)
	}
	return items
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
// prefix has a smaller sort string. ListUsers skips the others, so that
// a user found by several fields is returned once. Decided here rather
// than in the Query's filter: DynamoDB Local evaluates such a filter
// slowly, and the entries skipped are few.
func searchFirst(it Item, prefix string) bool {
	field := getS(it, attrSearchField)
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
