package usage

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
)

// searchWorkers bounds the users whose search index one batch updates at
// once: users are independent, and a batch of an import holds hundreds.
const searchWorkers = 8

// searchIndex applies the batch's changes of user items to the search
// index, one store.SearchChange per user (its records in order: the
// stream delivers a user's records in order), and returns the index of
// the earliest record of the users that failed, -1 when none did. Lambda
// then delivers the batch again from there: every record of those users
// comes again, and the users applied already find their markers at their
// last record and rewrite the same items.
func (c *Recorder) searchIndex(ctx context.Context, recs []events.DynamoDBEventRecord) int {
	var order []*store.SearchChange
	first := map[string]int{}
	changes := map[string]*store.SearchChange{}
	for i := range recs {
		r := &recs[i]
		keys, err := stream.Item(r.Change.Keys)
		if err != nil || store.ItemKind(keys) != store.KindUser {
			continue
		}
		oldImg, err1 := stream.Item(r.Change.OldImage)
		newImg, err2 := stream.Item(r.Change.NewImage)
		if err1 != nil || err2 != nil {
			c.logger().WarnContext(ctx, "user record not indexed: its image does not decode", "eventId", r.EventID)
			continue
		}
		old, cur := store.UserFromImage(oldImg), store.UserFromImage(newImg)
		id := ""
		switch {
		case cur != nil:
			id = cur.ID
		case old != nil:
			id = old.ID
		default:
			continue
		}
		ch := changes[id]
		if ch == nil {
			ch = &store.SearchChange{UserID: id}
			changes[id], first[id] = ch, i
			order = append(order, ch)
		}
		ch.Seen = append(ch.Seen, old, cur)
		ch.Final, ch.Sequence = cur, r.Change.SequenceNumber
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	failedAt := -1
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, searchWorkers)
	for _, ch := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.Store.ApplySearchIndex(ctx, *ch, now().UTC()); err != nil {
				c.logger().ErrorContext(ctx, "search index not updated; the stream delivers these records again",
					"userId", ch.UserID, "err", err.Error())
				mu.Lock()
				if failedAt < 0 || first[ch.UserID] < failedAt {
					failedAt = first[ch.UserID]
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failedAt
}
