package bench

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/store"
)

// Capacity units, computed from the requests the functions send by
// DynamoDB's published rules, because DynamoDB Local's own figures
// (ReturnConsumedCapacity) are not reliable:
//
//   - a write costs one write unit per 1 KB of the item, rounded up (a
//     PutItem's item is in the request; for an UpdateItem, DeleteItem or a
//     transaction's ConditionCheck the item is read from the table once
//     the load is over, its size after the load: at least one unit);
//   - a read costs one read unit per 4 KB, rounded up, per item for
//     GetItem and BatchGetItem (a key with no item costs one), for the
//     items a Query or Scan returned together; half as much when it is
//     eventually consistent (a Query of an index always is);
//   - inside TransactWriteItems and TransactGetItems every item costs
//     twice as much.
//
// On-demand tables bill exactly these as write and read request units.

const (
	writeUnitBytes = 1024
	readUnitBytes  = 4096
)

// capacity is the units of some requests: wcu and rcu counted from what
// the requests carry, and the writes whose item must be sized from the
// table (sized).
type capacity struct {
	wcu, rcu float64
	sized    []sizedWrite
}

// sizedWrite is a write whose units depend on the size of the item it
// names: key's item size, times factor (2 in a transaction).
type sizedWrite struct {
	key    map[string]types.AttributeValue
	factor float64
}

func (c capacity) add(o capacity) capacity {
	return capacity{wcu: c.wcu + o.wcu, rcu: c.rcu + o.rcu, sized: append(append([]sizedWrite{}, c.sized...), o.sized...)}
}

// requestCapacity returns the units of one request (params) given its
// result; nil result (a failed request) costs nothing here.
func requestCapacity(params, result any) capacity {
	var c capacity
	if result == nil {
		return c
	}
	consistentFactor := func(consistent *bool) float64 {
		if aws.ToBool(consistent) {
			return 1
		}
		return 0.5
	}
	switch in := params.(type) {
	case *dynamodb.PutItemInput:
		c.wcu += writeUnits(in.Item)
	case *dynamodb.UpdateItemInput:
		c.sized = append(c.sized, sizedWrite{key: in.Key, factor: 1})
	case *dynamodb.DeleteItemInput:
		c.sized = append(c.sized, sizedWrite{key: in.Key, factor: 1})
	case *dynamodb.BatchWriteItemInput:
		left := map[string]bool{}
		if out, ok := result.(*dynamodb.BatchWriteItemOutput); ok {
			for _, reqs := range out.UnprocessedItems {
				for _, r := range reqs {
					left[requestKeyID(r)] = true
				}
			}
		}
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				if left[requestKeyID(r)] {
					continue
				}
				if r.PutRequest != nil {
					c.wcu += writeUnits(r.PutRequest.Item)
				} else if r.DeleteRequest != nil {
					c.sized = append(c.sized, sizedWrite{key: r.DeleteRequest.Key, factor: 1})
				}
			}
		}
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range in.TransactItems {
			switch {
			case it.Put != nil:
				c.wcu += 2 * writeUnits(it.Put.Item)
			case it.Update != nil:
				c.sized = append(c.sized, sizedWrite{key: it.Update.Key, factor: 2})
			case it.Delete != nil:
				c.sized = append(c.sized, sizedWrite{key: it.Delete.Key, factor: 2})
			case it.ConditionCheck != nil:
				c.sized = append(c.sized, sizedWrite{key: it.ConditionCheck.Key, factor: 2})
			}
		}
	case *dynamodb.GetItemInput:
		out, _ := result.(*dynamodb.GetItemOutput)
		units := 1.0
		if out != nil && out.Item != nil {
			units = readUnits(store.ItemSize(out.Item))
		}
		c.rcu += units * consistentFactor(in.ConsistentRead)
	case *dynamodb.BatchGetItemInput:
		out, _ := result.(*dynamodb.BatchGetItemOutput)
		for table, ka := range in.RequestItems {
			asked := len(ka.Keys)
			if out != nil {
				asked -= len(out.UnprocessedKeys[table].Keys)
			}
			found := 0
			units := 0.0
			if out != nil {
				for _, it := range out.Responses[table] {
					units += readUnits(store.ItemSize(it))
					found++
				}
			}
			units += float64(max(asked-found, 0)) // a key with no item costs one unit
			c.rcu += units * consistentFactor(ka.ConsistentRead)
		}
	case *dynamodb.QueryInput:
		out, _ := result.(*dynamodb.QueryOutput)
		size := 0
		if out != nil {
			for _, it := range out.Items {
				size += store.ItemSize(it)
			}
		}
		factor := consistentFactor(in.ConsistentRead)
		if in.IndexName != nil {
			factor = 0.5
		}
		c.rcu += math.Max(1, readUnits(size)) * factor
	case *dynamodb.ScanInput:
		out, _ := result.(*dynamodb.ScanOutput)
		size := 0
		if out != nil {
			for _, it := range out.Items {
				size += store.ItemSize(it)
			}
		}
		c.rcu += math.Max(1, readUnits(size)) * consistentFactor(in.ConsistentRead)
	case *dynamodb.TransactGetItemsInput:
		out, _ := result.(*dynamodb.TransactGetItemsOutput)
		for i := range in.TransactItems {
			units := 1.0
			if out != nil && i < len(out.Responses) && out.Responses[i].Item != nil {
				units = readUnits(store.ItemSize(out.Responses[i].Item))
			}
			c.rcu += 2 * units
		}
	}
	return c
}

// transactCapacity is requestCapacity of a captured transaction, as if it
// succeeded.
func transactCapacity(txs ...*dynamodb.TransactWriteItemsInput) capacity {
	var c capacity
	for _, tx := range txs {
		c = c.add(requestCapacity(tx, &dynamodb.TransactWriteItemsOutput{}))
	}
	return c
}

func requestKeyID(r types.WriteRequest) string {
	if r.PutRequest != nil {
		return keyID(r.PutRequest.Item)
	}
	if r.DeleteRequest != nil {
		return keyID(r.DeleteRequest.Key)
	}
	return ""
}

func keyID(it map[string]types.AttributeValue) string {
	pk, _ := it["pk"].(*types.AttributeValueMemberS)
	sk, _ := it["sk"].(*types.AttributeValueMemberS)
	if pk == nil || sk == nil {
		return ""
	}
	return pk.Value + "\x00" + sk.Value
}

func writeUnits(it map[string]types.AttributeValue) float64 {
	return math.Max(1, math.Ceil(float64(store.ItemSize(it))/writeUnitBytes))
}

func readUnits(size int) float64 {
	return math.Max(1, math.Ceil(float64(size)/readUnitBytes))
}

// itemSizes sizes the items that writes name, from the table, once per
// key per benchmark: the items the loads update (pools, users) keep their
// size within a write unit from one load to the next.
type itemSizes struct {
	mu    sync.Mutex
	sizes map[string]int
}

// units returns c's write and read units, sizing its sized writes with db.
func (s *itemSizes) units(ctx context.Context, db *dynamodb.Client, table string, c capacity) (wcu, rcu float64, err error) {
	wcu, rcu = c.wcu, c.rcu
	for _, w := range c.sized {
		id := keyID(w.key)
		s.mu.Lock()
		if s.sizes == nil {
			s.sizes = map[string]int{}
		}
		size, ok := s.sizes[id]
		s.mu.Unlock()
		if !ok {
			out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: w.key, ConsistentRead: aws.Bool(true)})
			if err != nil {
				return 0, 0, fmt.Errorf("size item for its capacity units: %w", err)
			}
			if out.Item != nil {
				size = store.ItemSize(out.Item)
			}
			s.mu.Lock()
			s.sizes[id] = size
			s.mu.Unlock()
		}
		wcu += w.factor * math.Max(1, math.Ceil(float64(size)/writeUnitBytes))
	}
	return wcu, rcu, nil
}
