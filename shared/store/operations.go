package store

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Operations returns client as the store's DynamoDB: the eight methods the
// store calls, held as method values rather than the client itself. In a
// function that renders templates (text/template and html/template call
// methods by name, through reflection) the linker keeps every exported
// method of every type stored in an interface: Store.DB holding the
// *dynamodb.Client would keep all of DynamoDB's operations, about 1.4 MB
// of binary (docs/performance.md, sizes). Calls go through the client
// unchanged, with its options and middleware.
func Operations(client *dynamodb.Client) DynamoDB {
	return &operations{
		getItem: client.GetItem, batchGetItem: client.BatchGetItem, putItem: client.PutItem, query: client.Query,
		transactWriteItems: client.TransactWriteItems, updateItem: client.UpdateItem,
		batchWriteItem: client.BatchWriteItem, deleteItem: client.DeleteItem,
	}
}

// operations is DynamoDB over method values of a client (Operations).
type operations struct {
	getItem            func(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	batchGetItem       func(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	putItem            func(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	query              func(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	transactWriteItems func(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	updateItem         func(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	batchWriteItem     func(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	deleteItem         func(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

func (o *operations) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return o.getItem(ctx, in, optFns...)
}

func (o *operations) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return o.batchGetItem(ctx, in, optFns...)
}

func (o *operations) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return o.putItem(ctx, in, optFns...)
}

func (o *operations) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return o.query(ctx, in, optFns...)
}

func (o *operations) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return o.transactWriteItems(ctx, in, optFns...)
}

func (o *operations) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return o.updateItem(ctx, in, optFns...)
}

func (o *operations) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return o.batchWriteItem(ctx, in, optFns...)
}

func (o *operations) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return o.deleteItem(ctx, in, optFns...)
}
