package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	"licenseadmin/infra/stack"
	"licenseadmin/shared/licadmin"
)

// The fixed floor: the least transaction any license change must write,
// defined here rather than captured from the store, so that it does not
// move when the store's transactions grow or shrink. It holds three items:
//
//   - the pool's counters of a tier, updated on the condition that a
//     license is available (what decides a race on the pool);
//   - the user, updated on the condition of the version read (what makes
//     a change of a user whose state moved fail rather than overwrite);
//   - an audit record of the change, put (SPEC: every change is audited in
//     its own transaction).
//
// Today's assign writes these three items (its read of the admin's claim
// and the user decides who may change what; until 2026-12-08 a fourth,
// a ConditionCheck of the claim, let the functions remember admins). Its
// confirmation email is queued by the stream function once the change
// committed, outside the transaction.

// fixedTx returns the fixed floor's transaction for assigning an eco
// license to u, a user of account acct at its version.
func fixedTx(table string, acct *benchAccount, u *licadmin.User) *dynamodb.TransactWriteItemsInput {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 &table,
			Key:                       map[string]types.AttributeValue{"pk": s("ACCT#" + acct.id), "sk": s("POOL")},
			UpdateExpression:          ptr("SET #av = #av - :one ADD #as :one"),
			ConditionExpression:       ptr("#av > :zero"),
			ExpressionAttributeNames:  map[string]string{"#av": "available_eco", "#as": "assigned_eco"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1), ":zero": n(0)},
		}},
		{Update: &types.Update{
			TableName:                 &table,
			Key:                       map[string]types.AttributeValue{"pk": s("USER#" + u.ID), "sk": s("USER")},
			UpdateExpression:          ptr("SET #tier = :tier, #at = :now, #up = :now, #v = :next"),
			ConditionExpression:       ptr("#v = :v"),
			ExpressionAttributeNames:  map[string]string{"#tier": "tier", "#at": "assignedAt", "#up": "updatedAt", "#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":tier": s("eco"), ":now": s(now), ":v": n(u.Version), ":next": n(u.Version + 1)},
		}},
		{Put: &types.Put{
			TableName: &table,
			Item: map[string]types.AttributeValue{
				"pk": s("ACCT#" + acct.id), "sk": s("AUDIT#" + now + "#" + ulid.Make().String()),
				"actor": s(acct.admin.Email), "action": s("license.assign"), "target": s(u.ID),
				"ip": s("127.0.0.1"), "requestId": s(stack.NewRequestID()), "tier": s("eco"), "at": s(now),
			},
		}},
	}}
}

func ptr(s string) *string { return &s }

// fixedTxs returns the fixed floor's transaction for n fresh users of
// acct, seeded for it.
func (b *bench) fixedTxs(ctx context.Context, acct *benchAccount, round, n int) ([]*dynamodb.TransactWriteItemsInput, error) {
	users, err := b.stack.seedUsers(ctx, acct, fmt.Sprintf("fixed-r%d-%d", b.run, round), n)
	if err != nil {
		return nil, err
	}
	txs := make([]*dynamodb.TransactWriteItemsInput, len(users))
	for i, u := range users {
		txs[i] = fixedTx(b.stack.table, acct, u)
	}
	return txs, nil
}
