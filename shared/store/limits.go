package store

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB's limits on one TransactWriteItems. Real DynamoDB refuses a
// transaction beyond them with a ValidationException, while DynamoDB Local,
// which every test runs on, accepts some of them (it answers a transaction
// naming one item twice with the first failed condition): so the store
// checks them itself before sending, and a transaction that breaks one is a
// bug found by the tests rather than a 500 found in production.
const (
	// MaxTxnItems is the most items (actions) one transaction may hold.
	MaxTxnItems = 100
	// MaxTxnBytes is the most the items of one transaction may weigh together.
	MaxTxnBytes = 4 << 20
	// MaxItemBytes is the most one item may weigh, attribute names included.
	MaxItemBytes = 400 << 10
)

// ErrTxnLimit is wrapped by the error of a transaction that the store
// refused to send because it breaks one of DynamoDB's limits: an internal
// error (500) for the client, and a bug in the method that built it.
var ErrTxnLimit = errors.New("transaction breaks a DynamoDB limit")

// checkTxn reports the first of DynamoDB's transaction rules that items
// break: an item named twice, more than MaxTxnItems items, an item over
// MaxItemBytes, more than MaxTxnBytes in all. An Update, Delete or
// ConditionCheck is weighed by what the request carries (key and values):
// the item it changes is not known before sending, and DynamoDB checks
// that one itself.
func checkTxn(table string, items []types.TransactWriteItem) error {
	if len(items) == 0 {
		return fmt.Errorf("%w: a transaction needs at least one item", ErrTxnLimit)
	}
	if len(items) > MaxTxnItems {
		return fmt.Errorf("%w: %d items, at most %d", ErrTxnLimit, len(items), MaxTxnItems)
	}
	seen := make(map[string]int, len(items))
	total := 0
	for i, it := range items {
		tbl, k, size := txnItem(it)
		if k == nil {
			return fmt.Errorf("%w: item %d names no action", ErrTxnLimit, i)
		}
		if tbl == "" {
			tbl = table
		}
		name := tbl + "\x00" + getS(k, attrPK) + "\x00" + getS(k, attrSK)
		if first, ok := seen[name]; ok {
			return fmt.Errorf("%w: items %d and %d both name %s/%s", ErrTxnLimit, first, i, getS(k, attrPK), getS(k, attrSK))
		}
		seen[name] = i
		if size > MaxItemBytes {
			return fmt.Errorf("%w: item %d (%s/%s) weighs %d bytes, at most %d", ErrTxnLimit, i, getS(k, attrPK), getS(k, attrSK), size, MaxItemBytes)
		}
		total += size
	}
	if total > MaxTxnBytes {
		return fmt.Errorf("%w: %d bytes in all, at most %d", ErrTxnLimit, total, MaxTxnBytes)
	}
	return nil
}

// txnItem returns the table, key and weight of one action.
func txnItem(it types.TransactWriteItem) (table string, k Item, size int) {
	switch {
	case it.Put != nil:
		return aws.ToString(it.Put.TableName), Item{attrPK: it.Put.Item[attrPK], attrSK: it.Put.Item[attrSK]}, ItemSize(it.Put.Item)
	case it.Update != nil:
		return aws.ToString(it.Update.TableName), it.Update.Key, ItemSize(it.Update.Key) + ItemSize(it.Update.ExpressionAttributeValues)
	case it.Delete != nil:
		return aws.ToString(it.Delete.TableName), it.Delete.Key, ItemSize(it.Delete.Key) + ItemSize(it.Delete.ExpressionAttributeValues)
	case it.ConditionCheck != nil:
		return aws.ToString(it.ConditionCheck.TableName), it.ConditionCheck.Key, ItemSize(it.ConditionCheck.Key) + ItemSize(it.ConditionCheck.ExpressionAttributeValues)
	}
	return "", nil, 0
}

// ItemSize is an item's size as DynamoDB counts it: the UTF-8 length of
// each attribute name plus the size of its value. The transaction guard
// checks DynamoDB's limits with it, and the benchmark computes capacity
// units with it, so both count bytes one way.
func ItemSize(it Item) int {
	n := 0
	for name, v := range it {
		n += len(name) + valueSize(v)
	}
	return n
}

// valueSize follows DynamoDB's item size rules: strings and binaries by
// length, numbers about one byte per two significant digits plus one,
// booleans and nulls one byte, lists and maps three bytes plus one per
// element besides their elements.
func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for name, e := range v.Value {
			n += 1 + len(name) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize is at most 21 bytes, the size of DynamoDB's largest number.
func numberSize(s string) int {
	return min(21, (len(s)+1)/2+1)
}
