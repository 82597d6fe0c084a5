package bench

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
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
//     twice as much;
//   - a write of an item that is, or was, in a global secondary index
//     also writes the index: one write of the index entry (its projected
//     attributes, 1 KB per unit) when the item enters, leaves or changes
//     a projected attribute, two when it changes an index key (the old
//     entry deleted, the new one put). Index writes are counted at the
//     standard rate, inside transactions too: AWS documents the doubling
//     for the items of a transaction, and the index is kept in step after
//     the commit.
//
// On-demand tables bill exactly these as write and read request units.
//
// What the index rule cannot see from a request is counted as follows: a
// put makes a new entry (the store puts indexed items only as new items:
// users, outbox emails, import records); an update's item is taken as it
// is after the load (its entry is written if it is in the index then, and
// an update that names an index key changes or removes that key); a
// delete's item is gone when it is sized, so its entry is not counted (no
// measured operation deletes an indexed item).

const (
	writeUnitBytes = 1024
	readUnitBytes  = 4096
)

// capacity is the units of some requests: wcu and rcu counted from what
// the requests carry, the writes whose item must be sized from the table
// (sized), and the items written, for their index entries (indexed).
type capacity struct {
	wcu, rcu float64
	sized    []sizedWrite
	indexed  []itemWrite
}

// sizedWrite is a write whose units depend on the size of the item it
// names: key's item size, times factor (2 in a transaction).
type sizedWrite struct {
	key    map[string]types.AttributeValue
	factor float64
}

// itemWrite is one item a request writes, for its index entries: a put's
// item, or the key of an updated or deleted item with the attribute names
// the update names (every name of its update expression).
type itemWrite struct {
	put    map[string]types.AttributeValue
	key    map[string]types.AttributeValue
	named  []string
	delete bool
}

func (c capacity) add(o capacity) capacity {
	return capacity{wcu: c.wcu + o.wcu, rcu: c.rcu + o.rcu,
		sized:   append(append([]sizedWrite{}, c.sized...), o.sized...),
		indexed: append(append([]itemWrite{}, c.indexed...), o.indexed...)}
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
		c.indexed = append(c.indexed, itemWrite{put: in.Item})
	case *dynamodb.UpdateItemInput:
		c.sized = append(c.sized, sizedWrite{key: in.Key, factor: 1})
		c.indexed = append(c.indexed, itemWrite{key: in.Key, named: updateNames(in.UpdateExpression, in.ExpressionAttributeNames)})
	case *dynamodb.DeleteItemInput:
		c.sized = append(c.sized, sizedWrite{key: in.Key, factor: 1})
		c.indexed = append(c.indexed, itemWrite{key: in.Key, delete: true})
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
					c.indexed = append(c.indexed, itemWrite{put: r.PutRequest.Item})
				} else if r.DeleteRequest != nil {
					c.sized = append(c.sized, sizedWrite{key: r.DeleteRequest.Key, factor: 1})
					c.indexed = append(c.indexed, itemWrite{key: r.DeleteRequest.Key, delete: true})
				}
			}
		}
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range in.TransactItems {
			switch {
			case it.Put != nil:
				c.wcu += 2 * writeUnits(it.Put.Item)
				c.indexed = append(c.indexed, itemWrite{put: it.Put.Item})
			case it.Update != nil:
				c.sized = append(c.sized, sizedWrite{key: it.Update.Key, factor: 2})
				c.indexed = append(c.indexed, itemWrite{key: it.Update.Key, named: updateNames(it.Update.UpdateExpression, it.Update.ExpressionAttributeNames)})
			case it.Delete != nil:
				c.sized = append(c.sized, sizedWrite{key: it.Delete.Key, factor: 2})
				c.indexed = append(c.indexed, itemWrite{key: it.Delete.Key, delete: true})
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
// size within a write unit from one load to the next. indexes are the
// table's global secondary indexes, whose entries writes also write.
type itemSizes struct {
	indexes []tableIndex
	mu      sync.Mutex
	items   map[string]map[string]types.AttributeValue
}

// units returns c's write and read units, sizing its sized writes with db,
// index writes included.
func (s *itemSizes) units(ctx context.Context, db *dynamodb.Client, table string, c capacity) (wcu, rcu float64, err error) {
	wcu, rcu = c.wcu, c.rcu
	for _, w := range c.sized {
		it, err := s.item(ctx, db, table, w.key)
		if err != nil {
			return 0, 0, err
		}
		wcu += w.factor * math.Max(1, math.Ceil(float64(store.ItemSize(it))/writeUnitBytes))
	}
	for _, w := range c.indexed {
		after := w.put
		if w.put == nil && !w.delete {
			if after, err = s.item(ctx, db, table, w.key); err != nil {
				return 0, 0, err
			}
		}
		for _, ix := range s.indexes {
			wcu += ix.writeUnits(w, after)
		}
	}
	return wcu, rcu, nil
}

// item returns the item of key as it is in the table, read once per key.
func (s *itemSizes) item(ctx context.Context, db *dynamodb.Client, table string, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	id := keyID(key)
	s.mu.Lock()
	it, ok := s.items[id]
	s.mu.Unlock()
	if ok {
		return it, nil
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("size item for its capacity units: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = map[string]map[string]types.AttributeValue{}
	}
	s.items[id] = out.Item
	return out.Item, nil
}

// tableIndex is a global secondary index of the table, as the template
// defines it: its key attributes, and the attributes its entries hold.
type tableIndex struct {
	name       string
	keys       []string
	projection types.ProjectionType
	include    []string
}

// tableIndexes returns the global secondary indexes of the table the
// template creates (template.TableInput).
func tableIndexes(in *dynamodb.CreateTableInput) []tableIndex {
	var out []tableIndex
	for _, g := range in.GlobalSecondaryIndexes {
		ix := tableIndex{name: aws.ToString(g.IndexName), projection: types.ProjectionTypeAll}
		for _, k := range g.KeySchema {
			ix.keys = append(ix.keys, aws.ToString(k.AttributeName))
		}
		if g.Projection != nil {
			ix.projection = g.Projection.ProjectionType
			ix.include = g.Projection.NonKeyAttributes
		}
		out = append(out, ix)
	}
	return out
}

// holds reports whether it has an entry in the index: it has every key
// attribute of the index.
func (ix tableIndex) holds(it map[string]types.AttributeValue) bool {
	for _, k := range ix.keys {
		if it[k] == nil {
			return false
		}
	}
	return len(it) > 0
}

// projects reports whether attribute name is in the index's entries.
func (ix tableIndex) projects(name string) bool {
	return ix.projection == types.ProjectionTypeAll || slices.Contains(ix.keys, name) ||
		(ix.projection == types.ProjectionTypeInclude && slices.Contains(ix.include, name))
}

// entryUnits is the write units of it's entry in the index: the table's
// key, the index's keys and the projected attributes, 1 KB per unit.
func (ix tableIndex) entryUnits(it map[string]types.AttributeValue) float64 {
	entry := map[string]types.AttributeValue{}
	for name, v := range it {
		if name == "pk" || name == "sk" || ix.projects(name) {
			entry[name] = v
		}
	}
	return writeUnits(entry)
}

// writeUnits is what write w costs the index, given the item after it
// (nil for a delete or an item that is gone), by the rules above.
func (ix tableIndex) writeUnits(w itemWrite, after map[string]types.AttributeValue) float64 {
	switch {
	case w.delete:
		return 0 // the item is gone: see above
	case w.put != nil:
		if ix.holds(after) {
			return ix.entryUnits(after)
		}
		return 0
	}
	keyNamed, projectedNamed := false, false
	for _, name := range w.named {
		keyNamed = keyNamed || slices.Contains(ix.keys, name)
		projectedNamed = projectedNamed || ix.projects(name)
	}
	switch {
	case ix.holds(after) && keyNamed:
		return 2 * ix.entryUnits(after) // the old entry deleted, the new one put
	case ix.holds(after) && projectedNamed:
		return ix.entryUnits(after)
	case keyNamed:
		return 1 // the entry deleted: an index key removed
	}
	return 0
}

// updateNames returns the attribute names an update expression names: its
// #placeholders resolved through names, and its plain words that are not
// keywords or functions of the expression syntax.
func updateNames(expr *string, names map[string]string) []string {
	var out []string
	for _, w := range updateWord.FindAllString(aws.ToString(expr), -1) {
		switch {
		case strings.HasPrefix(w, ":"):
		case strings.HasPrefix(w, "#"):
			out = append(out, names[w])
		case !updateSyntax[strings.ToLower(w)]:
			out = append(out, w)
		}
	}
	return out
}

var (
	updateWord   = regexp.MustCompile(`[#:][A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*`)
	updateSyntax = map[string]bool{"set": true, "remove": true, "add": true, "delete": true,
		"if_not_exists": true, "list_append": true}
)
