package template_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/infra/template"
)

func key(name string, kt types.KeyType) types.KeySchemaElement {
	return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: kt}
}

func attr(name string) types.AttributeDefinition {
	return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
}

// TestTableInput ensures the CreateTable request mirrors the template's
// table: keys, attributes, indexes, billing mode and throughput.
func TestTableInput(t *testing.T) {
	fixture := mustParseFile(t, "testdata/template.yaml")
	provisioned, err := template.Parse([]byte(`
Resources:
  Other:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PROVISIONED
      ProvisionedThroughput: {ReadCapacityUnits: 5, WriteCapacityUnits: 2}
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}, {AttributeName: n, AttributeType: N}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: byN
          KeySchema: [{AttributeName: n, KeyType: HASH}]
          Projection: {ProjectionType: INCLUDE, NonKeyAttributes: [a]}
      StreamSpecification: {StreamViewType: NEW_IMAGE}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tpl  *template.Template
		want *dynamodb.CreateTableInput
	}{
		{"fixture", fixture, &dynamodb.CreateTableInput{
			TableName:            aws.String("t1"),
			BillingMode:          types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{attr("pk"), attr("sk"), attr("gsi1pk"), attr("gsi1sk")},
			KeySchema:            []types.KeySchemaElement{key("pk", types.KeyTypeHash), key("sk", types.KeyTypeRange)},
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
				IndexName:  aws.String("gsi1"),
				KeySchema:  []types.KeySchemaElement{key("gsi1pk", types.KeyTypeHash), key("gsi1sk", types.KeyTypeRange)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			}},
		}},
		{"provisioned only table", provisioned, &dynamodb.CreateTableInput{
			TableName:   aws.String("t1"),
			BillingMode: types.BillingModeProvisioned,
			AttributeDefinitions: []types.AttributeDefinition{attr("id"),
				{AttributeName: aws.String("n"), AttributeType: types.ScalarAttributeTypeN}},
			KeySchema:             []types.KeySchemaElement{key("id", types.KeyTypeHash)},
			ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(5), WriteCapacityUnits: aws.Int64(2)},
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
				IndexName:             aws.String("byN"),
				KeySchema:             []types.KeySchemaElement{key("n", types.KeyTypeHash)},
				Projection:            &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"a"}},
				ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(1), WriteCapacityUnits: aws.Int64(1)},
			}},
			StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tpl.TableInput("t1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestTableInputErrors ensures a template without a usable table is refused.
func TestTableInputErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"no table", "Resources:\n  B: {Type: AWS::S3::Bucket}\n", "found 0 tables"},
		{"two tables, none named Table", "Resources:\n  A: {Type: AWS::DynamoDB::Table}\n  B: {Type: AWS::DynamoDB::Table}\n", "found 2 tables"},
		{"no key schema", "Resources:\n  Table: {Type: AWS::DynamoDB::Table, Properties: {BillingMode: PAY_PER_REQUEST}}\n", "no KeySchema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := template.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tpl.TableInput("x"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestTTLAttribute ensures the TTL attribute is reported only when enabled.
func TestTTLAttribute(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"enabled", "Resources:\n  Table: {Type: AWS::DynamoDB::Table, Properties: {TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}}}\n", "ttl"},
		{"disabled", "Resources:\n  Table: {Type: AWS::DynamoDB::Table, Properties: {TimeToLiveSpecification: {AttributeName: ttl, Enabled: false}}}\n", ""},
		{"from a parameter", "Resources:\n  Table: {Type: AWS::DynamoDB::Table, Properties: {TimeToLiveSpecification: {AttributeName: exp, Enabled: !Ref On}}}\n", "exp"},
		{"absent", "Resources:\n  Table: {Type: AWS::DynamoDB::Table}\n", ""},
		{"no table", "Resources:\n  B: {Type: AWS::S3::Bucket}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := template.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.TTLAttribute(); got != tt.want {
				t.Errorf("TTLAttribute() = %q, want %q", got, tt.want)
			}
		})
	}
}
