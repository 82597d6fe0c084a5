package store

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/licadmin"
)

// Statistics read the monthly counters that ingestion maintains and the
// account's users, never log entries: what a request reads depends on the
// number of users and months asked for, not on how much was logged.

// UserUsage returns a user's counters for each month from..to (YYYY-MM,
// inclusive) that has any, in one Query of the user's partition.
func (s *Store) UserUsage(ctx context.Context, userID, from, to string) (map[string]licadmin.Counters, error) {
	e := newExpr()
	keyCond := fmt.Sprintf("%s = %s AND %s BETWEEN %s AND %s", e.n(attrPK), e.v(str(userPK(userID))),
		e.n(attrSK), e.v(str(skStatsPrefix+from)), e.v(str(skStatsPrefix+to)))
	in := &dynamodb.QueryInput{
		TableName:                 &s.Table,
		KeyConditionExpression:    &keyCond,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	}
	months := map[string]licadmin.Counters{}
	p := dynamodb.NewQueryPaginator(s.DB, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query usage of %s: %w", userID, err)
		}
		for _, it := range out.Items {
			months[getS(it, "month")] = decodeCounters(it)
		}
	}
	return months, nil
}

// statsReaders is how many BatchGetItem calls of counters run at once.
const statsReaders = 8

// UsageOf returns, for each of userIDs, the sum of its counters over months,
// reading the users × months counter items with BatchGetItem (100 keys per
// call, a few calls at once). Users without usage are absent.
func (s *Store) UsageOf(ctx context.Context, userIDs, months []string) (map[string]licadmin.Counters, error) {
	keys := make([]key, 0, len(userIDs)*len(months))
	for _, id := range userIDs {
		for _, m := range months {
			keys = append(keys, statsKey(id, m))
		}
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		sem      = make(chan struct{}, statsReaders)
	)
	sums := map[string]licadmin.Counters{}
	for chunk := range slices.Chunk(keys, maxBatchGetKeys) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			items, err := s.batchGet(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("get usage counters: %w", err)
				}
				return
			}
			for _, it := range items {
				id := getS(it, "userId")
				c := sums[id]
				c.Add(decodeCounters(it))
				sums[id] = c
			}
		}()
	}
	wg.Wait()
	return sums, firstErr
}

// CountUsers counts an account's users by status and license from the
// users' index, reading only the two attributes it needs: what it reads
// grows with the number of users, never with their logs.
func (s *Store) CountUsers(ctx context.Context, accountID string) (licadmin.UserCounts, error) {
	e := newExpr()
	in := s.queryIndex(e, usersGSI1PK(accountID))
	in.ProjectionExpression = aws.String(e.n("status") + ", " + e.n("tier"))
	var c licadmin.UserCounts
	p := dynamodb.NewQueryPaginator(s.DB, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return c, fmt.Errorf("count users of %s: %w", accountID, err)
		}
		for _, it := range out.Items {
			c.Total++
			if licadmin.Status(getS(it, "status")) == licadmin.StatusActive {
				c.Active++
			} else {
				c.Pending++
			}
			if getS(it, "tier") == "" {
				c.Unlicensed++
			}
		}
	}
	return c, nil
}
