package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestCheckTxn holds checkTxn to DynamoDB's transaction rules: each case
// is a transaction real DynamoDB refuses (or accepts) before any condition.
func TestCheckTxn(t *testing.T) {
	put := func(pk, sk string, extra int) types.TransactWriteItem {
		it := mkKey(pk, sk)
		if extra > 0 {
			it["blob"] = bin(make([]byte, extra))
		}
		return types.TransactWriteItem{Put: &types.Put{TableName: aws.String("t"), Item: it}}
	}
	check := func(pk, sk string) types.TransactWriteItem {
		return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{TableName: aws.String("t"), Key: mkKey(pk, sk), ConditionExpression: aws.String("x")}}
	}
	update := func(pk, sk string, value int) types.TransactWriteItem {
		return types.TransactWriteItem{Update: &types.Update{TableName: aws.String("t"), Key: mkKey(pk, sk),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": bin(make([]byte, value))}}}
	}
	del := func(pk, sk string) types.TransactWriteItem {
		return types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String("t"), Key: mkKey(pk, sk)}}
	}
	many := func(n, each int) []types.TransactWriteItem {
		var items []types.TransactWriteItem
		for i := range n {
			items = append(items, put("P", strings.Repeat("s", i+1), each))
		}
		return items
	}
	for _, tc := range []struct {
		name  string
		items []types.TransactWriteItem
		want  string // part of the error; "" for none
	}{
		{"one of each action", []types.TransactWriteItem{put("A", "1", 0), check("B", "1"), update("C", "1", 10), del("D", "1")}, ""},
		{"same partition, other sort keys", []types.TransactWriteItem{put("A", "1", 0), put("A", "2", 0)}, ""},
		{"put and check of one item", []types.TransactWriteItem{put("A", "1", 0), check("A", "1")}, "both name A/1"},
		{"update and delete of one item", []types.TransactWriteItem{update("A", "1", 1), del("A", "1")}, "both name A/1"},
		{"100 items", many(100, 0), ""},
		{"101 items", many(101, 0), "101 items"},
		{"an item of 400 KB", []types.TransactWriteItem{put("A", "1", MaxItemBytes-len("pkAskblob1"))}, ""},
		{"an item over 400 KB", []types.TransactWriteItem{put("A", "1", MaxItemBytes)}, "weighs"},
		{"an update carrying over 400 KB", []types.TransactWriteItem{update("A", "1", MaxItemBytes)}, "weighs"},
		{"11 items of 390 KB", many(11, 390<<10), "bytes in all"},
		{"10 items of 390 KB", many(10, 390<<10), ""},
		{"no items", nil, "at least one"},
		{"an unsealed placeholder", []types.TransactWriteItem{{}, put("A", "1", 0)}, "names no action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkTxn("t", tc.items)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrTxnLimit) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want ErrTxnLimit saying %q", err, tc.want)
			}
		})
	}
}

// TestItemSize follows DynamoDB's documented sizes.
func TestItemSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		it   Item
		want int
	}{
		{"string", Item{"ab": str("héllo")}, 2 + 6},
		{"number", Item{"n": num(12345)}, 1 + 4},
		{"bool", Item{"b": boolean(true)}, 2},
		{"binary", Item{"b": bin([]byte{1, 2, 3})}, 4},
		{"map", Item{"m": strMap(map[string]string{"k": "vv"})}, 1 + 3 + 1 + 1 + 2},
		{"list", Item{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{str("x"), str("yz")}}}, 1 + 3 + 2 + 3},
	} {
		if got := ItemSize(tc.it); got != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, got, tc.want)
		}
	}
}
