package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// UserFromImage decodes a user item from a stream image; nil when the
// image is not a user item.
func UserFromImage(it Item) *licadmin.User { return decodeUser(it) }

// PurgeLogs deletes the entries of generation gen of a user's log, at most
// budget of them, with BatchWriteItem (retrying unprocessed items). It
// returns how many it deleted and whether the generation is now empty; the
// caller continues later when it is not. Deleting is idempotent, so a purge
// interrupted anywhere can simply run again.
func (s *Store) PurgeLogs(ctx context.Context, userID string, gen int64, budget int) (deleted int, done bool, err error) {
	e := newExpr()
	keyCond := fmt.Sprintf("%s = %s", e.n(attrPK), e.v(str(logPK(userID, gen))))
	return s.purge(ctx, e, keyCond, budget)
}

// PurgeUsage deletes a deleted user's monthly counters, at most budget of
// them, like PurgeLogs.
func (s *Store) PurgeUsage(ctx context.Context, userID string, budget int) (deleted int, done bool, err error) {
	e := newExpr()
	keyCond := fmt.Sprintf("%s = %s AND begins_with(%s, %s)", e.n(attrPK), e.v(str(userPK(userID))), e.n(attrSK), e.v(str(skStatsPrefix)))
	return s.purge(ctx, e, keyCond, budget)
}

// purgePage is how many keys one purge Query reads: a few BatchWriteItem
// calls' worth.
const purgePage = 500

func (s *Store) purge(ctx context.Context, e *expr, keyCond string, budget int) (int, bool, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.Table,
		KeyConditionExpression:    &keyCond,
		ProjectionExpression:      aws.String(e.n(attrPK) + ", " + e.n(attrSK)),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	}
	deleted := 0
	for deleted < budget {
		in.Limit = aws.Int32(int32(min(purgePage, budget-deleted)))
		out, err := s.DB.Query(ctx, in)
		if err != nil {
			return deleted, false, fmt.Errorf("query items to purge: %w", err)
		}
		keys := make([]key, 0, len(out.Items))
		for _, it := range out.Items {
			keys = append(keys, mkKey(getS(it, attrPK), getS(it, attrSK)))
		}
		if err := s.batchDelete(ctx, keys); err != nil {
			return deleted, false, err
		}
		deleted += len(keys)
		if out.LastEvaluatedKey == nil {
			return deleted, true, nil
		}
		// The items read are gone; the next page starts after them, and
		// starting from the top again would find the same ones.
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return deleted, false, nil
}

// batchDeleteSize is BatchWriteItem's limit.
const batchDeleteSize = 25

// batchDelete deletes keys in BatchWriteItem calls of 25, sending
// unprocessed items again with backoff until all are done.
func (s *Store) batchDelete(ctx context.Context, keys []key) error {
	for start := 0; start < len(keys); start += batchDeleteSize {
		chunk := keys[start:min(start+batchDeleteSize, len(keys))]
		reqs := make([]types.WriteRequest, len(chunk))
		for i, k := range chunk {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
		}
		pending := map[string][]types.WriteRequest{s.Table: reqs}
		for attempt := 0; len(pending[s.Table]) > 0; attempt++ {
			if attempt > 0 {
				if attempt > 10 {
					return licadmin.Errorf(licadmin.EUNAVAILABLE, "the table is busy; retry shortly")
				}
				if err := s.sleep(ctx, backoff(attempt)); err != nil {
					return err
				}
			}
			out, err := s.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return fmt.Errorf("batch delete: %w", err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}

// PurgeJob is a purge that one bounded call could not finish: the log
// generations FromGen..ToGen of a user, and its monthly counters when the
// user was deleted. Saved as a marker item, its stream record triggers the
// next call, in whatever shard the marker lands, so a long purge never
// holds up the records of the user's own partition.
type PurgeJob struct {
	// AccountID is the user's account, which keys its export files.
	AccountID string
	UserID    string
	FromGen   int64
	ToGen     int64
	Deleted   bool
	// Round counts the calls so far; each save changes it, which makes
	// the stream deliver the marker again.
	Round int64
}

// PurgeTTL bounds a marker's life: TTL removes a forgotten one, and the log
// entries' own TTL remains the backstop.
const PurgeTTL = 7 * 24 * time.Hour

func purgeKey(j *PurgeJob) key {
	sk := strconv.FormatInt(j.FromGen, 10) + "-" + strconv.FormatInt(j.ToGen, 10)
	if j.Deleted {
		sk += "-deleted"
	}
	return mkKey(purgePKPrefix+j.UserID, sk)
}

// SavePurge writes (or advances) the marker of job.
func (s *Store) SavePurge(ctx context.Context, j *PurgeJob, now time.Time) error {
	it := purgeKey(j)
	it["userId"] = str(j.UserID)
	if j.AccountID != "" {
		it["accountId"] = str(j.AccountID)
	}
	it["fromGen"] = num(j.FromGen)
	it["toGen"] = num(j.ToGen)
	it["deleted"] = boolean(j.Deleted)
	it["round"] = num(j.Round)
	it[attrTTL] = num(now.Add(PurgeTTL).Unix())
	if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Table, Item: it}); err != nil {
		return fmt.Errorf("save purge of %s: %w", j.UserID, err)
	}
	return nil
}

// DeletePurge removes the marker of a finished job.
func (s *Store) DeletePurge(ctx context.Context, j *PurgeJob) error {
	if _, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.Table, Key: purgeKey(j)}); err != nil {
		return fmt.Errorf("delete purge marker of %s: %w", j.UserID, err)
	}
	return nil
}

// PurgeFromImage decodes a purge marker from a stream image; nil when the
// image is not one.
func PurgeFromImage(it Item) *PurgeJob {
	if it == nil || ItemKind(it) != KindPurge {
		return nil
	}
	return &PurgeJob{
		AccountID: getS(it, "accountId"),
		UserID:    getS(it, "userId"),
		FromGen:   getN(it, "fromGen"),
		ToGen:     getN(it, "toGen"),
		Deleted:   getBool(it, "deleted"),
		Round:     getN(it, "round"),
	}
}
