package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// logBounds returns the sort-key bounds of the entries with
// r.From <= time < r.To: an entry's key is its time then "#<eventId>", so
// it sorts after the bare time it starts with, and BETWEEN from AND to
// keeps an entry at exactly r.From and leaves one at exactly r.To out.
func logBounds(r licadmin.LogRange) (lo, hi string) {
	return formatTime(r.From), formatTime(r.To)
}

// LogPosition is where a page of log entries ended: the sort key of the
// last entry returned. It is opaque to callers.
type LogPosition = string

// MaxItemsRead bounds the items one list request reads from the table,
// whatever its filters drop: a page of a filtered list (users by license or
// status, log entries by type) that has read this many stops early, with
// the entries found so far (perhaps none) and a position to continue from.
// A request's cost is bounded; the client follows nextCursor.
const MaxItemsRead = 1000

// readBudget tracks the items a list request has read.
type readBudget struct{ read, max int32 }

// budget returns the read budget of one list request.
func (s *Store) budget() *readBudget {
	b := &readBudget{max: MaxItemsRead}
	if s.MaxItemsRead > 0 {
		b.max = int32(s.MaxItemsRead)
	}
	return b
}

// limit returns the Limit of the next Query: want, within what is left.
func (b *readBudget) limit(want int) *int32 {
	return aws.Int32(max(1, min(int32(want), b.max-b.read)))
}

// spent counts a Query's items and reports whether the budget is gone.
func (b *readBudget) spent(out *dynamodb.QueryOutput) bool {
	b.read += out.ScannedCount
	return b.read >= b.max
}

// ListLogs returns up to limit entries of generation gen of a user's log
// within r, newest first, starting after position after ("" for the first
// page), and the position to continue from, "" when there are no more. It
// reads at most MaxItemsRead items: a type filter that drops many may
// answer fewer than limit entries (none, even) with a position. Entries
// past their retention that TTL has not deleted yet are left out. A
// position outside r answers EINVALID.
func (s *Store) ListLogs(ctx context.Context, userID string, gen int64, r licadmin.LogRange, limit int, after LogPosition, now time.Time) ([]licadmin.LogEntry, LogPosition, error) {
	lo, hi := logBounds(r)
	in := s.logQuery(userID, gen, lo, hi, r.Type, now)
	if after != "" {
		if after < lo || after >= hi || !strings.Contains(after, "#") {
			return nil, "", licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
		}
		in.ExclusiveStartKey = mkKey(logPK(userID, gen), after)
	}
	var entries []licadmin.LogEntry
	var last string
	budget := s.budget()
	for {
		// One extra item tells whether a next page exists; with a type
		// filter, read in larger steps since some items are dropped.
		want := limit - len(entries) + 1
		if r.Type != "" {
			want = max(want, 100)
		}
		in.Limit = budget.limit(want)
		out, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("query log of %s: %w", userID, err)
		}
		for _, it := range out.Items {
			if len(entries) == limit {
				return entries, last, nil
			}
			entries = append(entries, decodeLogEntry(it))
			last = getS(it, attrSK)
		}
		if out.LastEvaluatedKey == nil {
			return entries, "", nil
		}
		if budget.spent(out) {
			// Continue after the last item read, returned or not.
			return entries, getS(out.LastEvaluatedKey, attrSK), nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// ScanLogs calls fn with every entry of generation gen of a user's log
// within r, newest first, reading one page at a time: memory stays flat
// whatever the log's size. It stops at fn's first error.
func (s *Store) ScanLogs(ctx context.Context, userID string, gen int64, r licadmin.LogRange, now time.Time, fn func(licadmin.LogEntry) error) error {
	lo, hi := logBounds(r)
	in := s.logQuery(userID, gen, lo, hi, r.Type, now)
	p := dynamodb.NewQueryPaginator(s.DB, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query log of %s: %w", userID, err)
		}
		for _, it := range out.Items {
			if err := fn(decodeLogEntry(it)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) logQuery(userID string, gen int64, lo, hi string, typ licadmin.EventType, now time.Time) *dynamodb.QueryInput {
	e := newExpr()
	keyCond := fmt.Sprintf("%s = %s AND %s BETWEEN %s AND %s",
		e.n(attrPK), e.v(str(logPK(userID, gen))), e.n(attrSK), e.v(str(lo)), e.v(str(hi)))
	filter := fmt.Sprintf("%s > %s", e.n(attrTTL), e.v(num(now.Unix())))
	if typ != "" {
		filter += fmt.Sprintf(" AND %s = %s", e.n("type"), e.v(str(string(typ))))
	}
	return &dynamodb.QueryInput{
		TableName:                 &s.Table,
		KeyConditionExpression:    &keyCond,
		FilterExpression:          &filter,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ScanIndexForward:          aws.Bool(false),
	}
}

func decodeLogEntry(it Item) licadmin.LogEntry {
	e := licadmin.LogEntry{
		ID:         getS(it, "eventId"),
		Time:       getTime(it, "at"),
		Type:       licadmin.EventType(getS(it, "type")),
		MessageRef: getS(it, "messageRef"),
		Recipients: []string{},
		Size:       getN(it, "bytes"),
		SourceIP:   getS(it, "ip"),
	}
	if l, ok := it["recipients"].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			if s, ok := v.(*types.AttributeValueMemberS); ok {
				e.Recipients = append(e.Recipients, s.Value)
			}
		}
	}
	return e
}
