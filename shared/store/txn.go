package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
)

// txn builds one TransactWriteItems call. Each item that has a condition
// carries the error to return when that condition fails, decided from the
// item as it was (ReturnValuesOnConditionCheckFailure ALL_OLD).
type txn struct {
	items  []types.TransactWriteItem
	onFail []func(old Item) error
}

// expr holds the names and values of one expression; names are always
// aliased because several attributes (status, role, ttl) are reserved words.
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
}

func newExpr() *expr {
	return &expr{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// n aliases an attribute name.
func (e *expr) n(name string) string {
	alias := "#" + fmt.Sprint(len(e.names))
	for a, n := range e.names {
		if n == name {
			return a
		}
	}
	e.names[alias] = name
	return alias
}

// v aliases a value.
func (e *expr) v(val types.AttributeValue) string {
	alias := fmt.Sprintf(":v%d", len(e.values))
	e.values[alias] = val
	return alias
}

func (e *expr) namesOrNil() map[string]string {
	if len(e.names) == 0 {
		return nil
	}
	return e.names
}

func (e *expr) valuesOrNil() map[string]types.AttributeValue {
	if len(e.values) == 0 {
		return nil
	}
	return e.values
}

func (t *txn) put(table string, it Item, cond string, e *expr, onFail func(Item) error) {
	p := &types.Put{TableName: &table, Item: it}
	if cond != "" {
		p.ConditionExpression = &cond
		p.ExpressionAttributeNames = e.namesOrNil()
		p.ExpressionAttributeValues = e.valuesOrNil()
		p.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	t.items = append(t.items, types.TransactWriteItem{Put: p})
	t.onFail = append(t.onFail, onFail)
}

// putNew appends a put of it on the condition that no item has its key:
// how every new item (account, user, email claim, import, ...) is created,
// so that an id or a claim is never written over.
func (t *txn) putNew(table string, it Item, onFail func(Item) error) {
	e := newExpr()
	t.put(table, it, fmt.Sprintf("attribute_not_exists(%s)", e.n(attrPK)), e, onFail)
}

func (t *txn) update(table string, k key, update, cond string, e *expr, onFail func(Item) error) {
	u := &types.Update{
		TableName:                 &table,
		Key:                       k,
		UpdateExpression:          &update,
		ExpressionAttributeNames:  e.namesOrNil(),
		ExpressionAttributeValues: e.valuesOrNil(),
	}
	if cond != "" {
		u.ConditionExpression = &cond
		u.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	t.items = append(t.items, types.TransactWriteItem{Update: u})
	t.onFail = append(t.onFail, onFail)
}

func (t *txn) check(table string, k key, cond string, e *expr, onFail func(Item) error) {
	t.items = append(t.items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                           &table,
		Key:                                 k,
		ConditionExpression:                 &cond,
		ExpressionAttributeNames:            e.namesOrNil(),
		ExpressionAttributeValues:           e.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}})
	t.onFail = append(t.onFail, onFail)
}

func (t *txn) delete(table string, k key, cond string, e *expr, onFail func(Item) error) {
	d := &types.Delete{TableName: &table, Key: k}
	if cond != "" {
		d.ConditionExpression = &cond
		d.ExpressionAttributeNames = e.namesOrNil()
		d.ExpressionAttributeValues = e.valuesOrNil()
		d.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	t.items = append(t.items, types.TransactWriteItem{Delete: d})
	t.onFail = append(t.onFail, onFail)
}

// begin starts a transaction for a request. When the request carries an
// Idempotency-Key, the record is the first item, so that a concurrent
// duplicate is recognised before any other failed condition.
func (s *Store) begin(ctx context.Context, now time.Time) (*txn, *idem.Pending) {
	t := &txn{}
	p := idem.From(ctx)
	if p != nil {
		// Placeholder; sealed with the response in commit.
		t.items = append(t.items, types.TransactWriteItem{})
		t.onFail = append(t.onFail, func(Item) error { return idem.ErrReplay })
	}
	return t, p
}

// commit seals the idempotency record (if any) with response, then runs the
// transaction. It retries only cancellations caused by conflicts with other
// transactions, reusing the ClientRequestToken so that a retry of a write
// that did land changes nothing; a failed condition returns the error its
// item declared.
func (s *Store) commit(ctx context.Context, t *txn, p *idem.Pending, response any, now time.Time) error {
	if p != nil {
		rec, err := p.Seal(response)
		if err != nil {
			return fmt.Errorf("seal idempotency record: %w", err)
		}
		e := newExpr()
		cond := fmt.Sprintf("attribute_not_exists(%s) OR %s < %s", e.n(attrPK), e.n(attrTTL), e.v(num(now.Unix())))
		t.items[0] = types.TransactWriteItem{Put: &types.Put{
			TableName:                           &s.Table,
			Item:                                idemItem(rec),
			ConditionExpression:                 &cond,
			ExpressionAttributeNames:            e.names,
			ExpressionAttributeValues:           e.values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureNone,
		}}
	}
	err := s.transact(ctx, t)
	if err == nil && p != nil {
		p.Written = true
	}
	return err
}

// transact sends t: every TransactWriteItems of the store goes through
// here, so DynamoDB's transaction limits are checked here (checkTxn).
func (s *Store) transact(ctx context.Context, t *txn) error {
	if err := checkTxn(s.Table, t.items); err != nil {
		return fmt.Errorf("transact write: %w", err)
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	in := &dynamodb.TransactWriteItemsInput{
		TransactItems:      t.items,
		ClientRequestToken: aws.String(hex.EncodeToString(token)),
	}
	maxRetries := s.MaxConflictRetries
	if maxRetries == 0 {
		maxRetries = 8
	}
	for attempt := 0; ; attempt++ {
		_, err := s.DB.TransactWriteItems(ctx, in)
		if err == nil {
			return nil
		}
		var cancel *types.TransactionCanceledException
		if !errors.As(err, &cancel) {
			return fmt.Errorf("transact write: %w", err)
		}
		conflict := false
		var failed []error
		for i, r := range cancel.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				if i < len(t.onFail) && t.onFail[i] != nil {
					failed = append(failed, t.onFail[i](r.Item))
					continue
				}
				return fmt.Errorf("transact write: unexpected failed condition on item %d: %w", i, err)
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded":
				conflict = true
			case "", "None":
			default:
				return fmt.Errorf("transact write: item %d: %w", i, err)
			}
		}
		if len(failed) > 0 {
			return conditionError(failed)
		}
		if !conflict {
			return fmt.Errorf("transact write: %w", err)
		}
		if s.Metrics != nil {
			s.Metrics.TransactionConflict(attempt < maxRetries)
		}
		if attempt >= maxRetries {
			return licadmin.Errorf(licadmin.EUNAVAILABLE, "too many concurrent changes; retry shortly")
		}
		if err := s.sleep(ctx, backoff(attempt+1)); err != nil {
			return err
		}
	}
}

// conditionError picks the error to return when several conditions of a
// transaction failed (DynamoDB reports each one): a concurrent duplicate
// of the request (idem.ErrReplay) first, then licadmin.ErrStale, since an
// item the operation was planned from changed and the other failures may
// only be consequences of that change (a pool counter already given back
// by a concurrent remove of the same user); else the first item's error.
func conditionError(failed []error) error {
	for _, target := range []error{idem.ErrReplay, licadmin.ErrStale} {
		for _, err := range failed {
			if errors.Is(err, target) {
				return err
			}
		}
	}
	return failed[0]
}

// TxnMetrics records the transaction retries of the store
// (*metrics.Emitter in Lambda).
type TxnMetrics interface {
	// TransactionConflict records an attempt cancelled by a conflicting
	// transaction or throttling; retried is false when the store gives up.
	TransactionConflict(retried bool)
}

// updateIf applies update to the item at k on condition cond, outside a
// transaction. A failed condition answers lost (the caller's sentinel for
// "someone else moved it"); any other failure is wrapped with what.
func (s *Store) updateIf(ctx context.Context, k key, update, cond string, e *expr, lost error, what string) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.Table,
		Key:                       k,
		UpdateExpression:          &update,
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return lost
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// putNew writes it unless an item with its key exists, and reports whether
// it wrote it; any other failure is wrapped with what.
func (s *Store) putNew(ctx context.Context, it Item, what string) (bool, error) {
	e := newExpr()
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                &s.Table,
		Item:                     it,
		ConditionExpression:      aws.String(fmt.Sprintf("attribute_not_exists(%s)", e.n(attrPK))),
		ExpressionAttributeNames: e.names,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return true, nil
}
