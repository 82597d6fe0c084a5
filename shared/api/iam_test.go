package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/apitest"
)

// TestIAMCheck ensures the check that every handler test runs holds: a
// call a function's policy in template.yaml does not allow (DeleteItem
// by GetUserFunction, a transaction's ConditionCheck by
// ActivateFunction) is reported, naming the function and the action; an
// allowed one (GetItem by AssignLicenseFunction), or a call made outside
// any function, is not.
func TestIAMCheck(t *testing.T) {
	e := apitest.New(t)
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "X"}, "sk": &types.AttributeValueMemberS{Value: "X"}}
	db := e.App.DynamoDB
	getUser := apitest.AsFunction(context.Background(), "GetUserFunction")
	assign := apitest.AsFunction(context.Background(), "AssignLicenseFunction")
	if _, err := db.GetItem(assign, &dynamodb.GetItemInput{TableName: aws.String(e.Table), Key: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(e.Table), Key: key}); err != nil {
		t.Fatal(err)
	}
	if denied := e.IAMDenied(); len(denied) != 0 {
		t.Fatalf("denied %v, want none", denied)
	}
	if _, err := db.DeleteItem(getUser, &dynamodb.DeleteItemInput{TableName: aws.String(e.Table), Key: key}); err != nil {
		t.Fatal(err)
	}
	activate := apitest.AsFunction(context.Background(), "ActivateFunction")
	_, _ = db.TransactWriteItems(activate, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{TableName: aws.String(e.Table), Key: key, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	denied := e.IAMDenied()
	want := []string{"GetUserFunction calls dynamodb:DeleteItem", "ActivateFunction calls dynamodb:ConditionCheckItem"}
	if len(denied) != len(want) {
		t.Fatalf("denied %v, want %d reports", denied, len(want))
	}
	for _, w := range want {
		found := false
		for _, d := range denied {
			found = found || strings.Contains(d, w)
		}
		if !found {
			t.Errorf("no report %q in %v", w, denied)
		}
	}
}
