// Package store keeps License Admin's state in one DynamoDB table. Every
// invariant of docs/api.md (pool counters, one license per user, one user per email,
// one account per domain, tenant isolation) is enforced by a condition
// expression or a transaction, never by reading first and writing after:
// reads only pick the error to report and build the response.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// DynamoDB is the part of the DynamoDB client the store uses.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Store reads and writes the table.
type Store struct {
	DB    DynamoDB
	Table string
	// NewID returns unique, time-ordered ids (audit record ids).
	NewID func() string
	// MaxConflictRetries bounds the retries of a transaction cancelled by a
	// conflict with another transaction. Throttling is retried by the SDK's
	// own retryer; a failed condition is never retried.
	MaxConflictRetries int
	// Sleep waits between retries; tests replace it.
	Sleep func(context.Context, time.Duration) error
	// Metrics is told of every transaction attempt cancelled by a conflict
	// or throttling; nil records nothing.
	Metrics TxnMetrics
	// MaxItemsRead bounds the items one list request reads; zero means
	// the package's MaxItemsRead (tests lower it).
	MaxItemsRead int
}

// LoadCaller reads, in one consistent BatchGetItem, the email claim of the
// caller and the named users. It returns a nil caller when no user has that
// email, and a nil entry for each user that does not exist.
func (s *Store) LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error) {
	keys := []key{emailKey(email)}
	for _, id := range userIDs {
		keys = append(keys, userKey(id))
	}
	items, err := s.getItems(ctx, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("load caller %q: %w", email, err)
	}
	var caller *licadmin.Caller
	users := make([]*licadmin.User, len(userIDs))
	for _, it := range items {
		pk := getS(it, attrPK)
		if pk == "EMAIL#"+email {
			caller = &licadmin.Caller{
				Email:     email,
				UserID:    getS(it, "userId"),
				AccountID: getS(it, "accountId"),
				Role:      licadmin.Role(getS(it, "role")),
			}
			licadmin.NoteAccount(ctx, caller.AccountID)
			continue
		}
		u := decodeUser(it)
		for i, id := range userIDs {
			if u != nil && u.ID == id {
				users[i] = u
			}
		}
	}
	return caller, users, nil
}

// LoadUsers reads the users ids in one round trip, consistently: nil for
// an id that names no user. It is LoadCaller without the caller, for a
// service that already knows its caller (callercache).
func (s *Store) LoadUsers(ctx context.Context, ids ...string) ([]*licadmin.User, error) {
	keys := make([]key, len(ids))
	for i, id := range ids {
		keys[i] = userKey(id)
	}
	items, err := s.getItems(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("load users %v: %w", ids, err)
	}
	users := make([]*licadmin.User, len(ids))
	for _, it := range items {
		u := decodeUser(it)
		for i, id := range ids {
			if u != nil && u.ID == id {
				users[i] = u
			}
		}
	}
	return users, nil
}

// getItems reads keys consistently in one request: GetItem for one key,
// which DynamoDB answers faster than a BatchGetItem of one, else
// BatchGetItem. Absent items are left out.
func (s *Store) getItems(ctx context.Context, keys []key) ([]Item, error) {
	if len(keys) != 1 {
		return s.batchGet(ctx, keys)
	}
	it, err := s.getItem(ctx, keys[0])
	if err != nil || it == nil {
		return nil, err
	}
	return []Item{it}, nil
}

func (s *Store) batchGet(ctx context.Context, keys []key) ([]Item, error) {
	return s.batchGetRead(ctx, keys, true)
}

// maxBatchGetKeys is the most keys one BatchGetItem may name.
const maxBatchGetKeys = 100

// batchGetRead reads keys with BatchGetItem, maxBatchGetKeys per call,
// consistently or not, asking again for the keys DynamoDB leaves
// unprocessed; absent items are left out.
func (s *Store) batchGetRead(ctx context.Context, keys []key, consistent bool) ([]Item, error) {
	// Duplicate keys are refused by BatchGetItem: ask once for each.
	seen := map[string]bool{}
	uniq := keys[:0:0]
	for _, k := range keys {
		id := getS(k, attrPK) + "\x00" + getS(k, attrSK)
		if !keyFits(k) {
			continue // names no item (an id too long): absent
		}
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, k)
		}
	}
	var items []Item
	for chunk := range slices.Chunk(uniq, maxBatchGetKeys) {
		got, err := s.batchGetChunk(ctx, chunk, consistent)
		if err != nil {
			return nil, err
		}
		items = append(items, got...)
	}
	return items, nil
}

// batchGetChunk is one BatchGetItem of keys (at most maxBatchGetKeys),
// with its unprocessed keys asked again.
func (s *Store) batchGetChunk(ctx context.Context, keys []key, consistent bool) ([]Item, error) {
	req := map[string]types.KeysAndAttributes{s.Table: {Keys: keys, ConsistentRead: aws.Bool(consistent)}}
	var items []Item
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt > 0 {
			if err := s.sleep(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
		}
		out, err := s.DB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, err
		}
		items = append(items, out.Responses[s.Table]...)
		req = out.UnprocessedKeys
		if attempt > 10 && len(req) > 0 {
			return nil, licadmin.Errorf(licadmin.EUNAVAILABLE, "the table is busy; retry shortly")
		}
	}
	return items, nil
}

// queryIndex returns the query of GSI1's partition gpk, its names and
// values in e, to which a filter or a projection adds its own.
func (s *Store) queryIndex(e *expr, gpk string) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName:                 &s.Table,
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String(fmt.Sprintf("%s = %s", e.n(attrGSI1PK), e.v(str(gpk)))),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	}
}

func (s *Store) getItem(ctx context.Context, k key) (Item, error) {
	if !keyFits(k) {
		return nil, nil
	}
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.Table, Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// Pool returns an account's license pool.
func (s *Store) Pool(ctx context.Context, accountID string) (*licadmin.Pool, error) {
	it, err := s.getItem(ctx, poolKey(accountID))
	if err != nil {
		return nil, fmt.Errorf("get pool of %s: %w", accountID, err)
	}
	return decodePool(it), nil
}

func (s *Store) newID() string {
	if s.NewID != nil {
		return s.NewID()
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Store) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	return licadmin.Sleep(ctx, d)
}

// backoff returns a full-jitter delay for the given retry (1-based): random
// in [0, min(1s, 10ms·2^attempt)), so that racing writers spread out.
func backoff(attempt int) time.Duration {
	ceiling := 10 * time.Millisecond << min(attempt, 7)
	if ceiling > time.Second {
		ceiling = time.Second
	}
	return time.Duration(mrand.Int64N(int64(ceiling)))
}
