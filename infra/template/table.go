package template

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

type tableProps struct {
	BillingMode          string      `yaml:"BillingMode"`
	AttributeDefinitions []attribute `yaml:"AttributeDefinitions"`
	KeySchema            []keyElem   `yaml:"KeySchema"`
	GlobalSecondaryIdx   []index     `yaml:"GlobalSecondaryIndexes"`
	LocalSecondaryIdx    []index     `yaml:"LocalSecondaryIndexes"`
	Throughput           *throughput `yaml:"ProvisionedThroughput"`
	Stream               *struct {
		StreamViewType string `yaml:"StreamViewType"`
	} `yaml:"StreamSpecification"`
	TTL *struct {
		AttributeName string `yaml:"AttributeName"`
		Enabled       any    `yaml:"Enabled"`
	} `yaml:"TimeToLiveSpecification"`
}

type attribute struct {
	Name string `yaml:"AttributeName"`
	Type string `yaml:"AttributeType"`
}

type keyElem struct {
	Name string `yaml:"AttributeName"`
	Type string `yaml:"KeyType"`
}

type index struct {
	Name       string    `yaml:"IndexName"`
	KeySchema  []keyElem `yaml:"KeySchema"`
	Projection struct {
		Type             string   `yaml:"ProjectionType"`
		NonKeyAttributes []string `yaml:"NonKeyAttributes"`
	} `yaml:"Projection"`
	Throughput *throughput `yaml:"ProvisionedThroughput"`
}

type throughput struct {
	Read  int64 `yaml:"ReadCapacityUnits"`
	Write int64 `yaml:"WriteCapacityUnits"`
}

// table returns the properties of the application's table: the resource
// named TableLogicalID, or else the template's only DynamoDB table.
func (t *Template) table() (*tableProps, error) {
	r, ok := t.resources[TableLogicalID]
	if !ok || r.Type != typeTable {
		var found []string
		for id, r := range t.resources {
			if r.Type == typeTable {
				found = append(found, id)
			}
		}
		if len(found) != 1 {
			return nil, fmt.Errorf("template: want a %s resource named %q, found %d tables", typeTable, TableLogicalID, len(found))
		}
		r = t.resources[found[0]]
	}
	var p tableProps
	if err := decodeOptional(&r.Properties, &p); err != nil {
		return nil, fmt.Errorf("template: table properties: %w", err)
	}
	return &p, nil
}

// TableInput returns the CreateTable request for the template's table under
// the given name, the one definition that local stacks and tests create
// their tables from: attribute definitions, key schema, secondary indexes,
// billing mode and stream. It returns an error when the template has no
// table or the table has no key schema.
func (t *Template) TableInput(name string) (*dynamodb.CreateTableInput, error) {
	p, err := t.table()
	if err != nil {
		return nil, err
	}
	if len(p.KeySchema) == 0 {
		return nil, errors.New("template: the table has no KeySchema")
	}
	in := &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		KeySchema: keySchema(p.KeySchema),
	}
	for _, a := range p.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.Name),
			AttributeType: types.ScalarAttributeType(a.Type),
		})
	}
	provisioned := strings.EqualFold(p.BillingMode, string(types.BillingModeProvisioned)) ||
		(p.BillingMode == "" && p.Throughput != nil)
	if provisioned {
		in.BillingMode = types.BillingModeProvisioned
		in.ProvisionedThroughput = p.Throughput.sdk()
	} else {
		in.BillingMode = types.BillingModePayPerRequest
	}
	for _, gsi := range p.GlobalSecondaryIdx {
		g := types.GlobalSecondaryIndex{
			IndexName:  aws.String(gsi.Name),
			KeySchema:  keySchema(gsi.KeySchema),
			Projection: gsi.projection(),
		}
		if provisioned {
			g.ProvisionedThroughput = gsi.Throughput.sdk()
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, g)
	}
	for _, lsi := range p.LocalSecondaryIdx {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, types.LocalSecondaryIndex{
			IndexName:  aws.String(lsi.Name),
			KeySchema:  keySchema(lsi.KeySchema),
			Projection: lsi.projection(),
		})
	}
	if p.Stream != nil && p.Stream.StreamViewType != "" {
		in.StreamSpecification = &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewType(p.Stream.StreamViewType),
		}
	}
	return in, nil
}

// TTLAttribute returns the table's time-to-live attribute name, or "" when
// the template enables none (or has no table).
func (t *Template) TTLAttribute() string {
	p, err := t.table()
	if err != nil || p.TTL == nil {
		return ""
	}
	switch e := p.TTL.Enabled.(type) {
	case bool:
		if !e {
			return ""
		}
	case string:
		if strings.EqualFold(e, "false") {
			return ""
		}
	}
	return p.TTL.AttributeName
}

func keySchema(ks []keyElem) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, types.KeySchemaElement{
			AttributeName: aws.String(k.Name),
			KeyType:       types.KeyType(k.Type),
		})
	}
	return out
}

func (ix index) projection() *types.Projection {
	p := &types.Projection{ProjectionType: types.ProjectionType(ix.Projection.Type)}
	if p.ProjectionType == "" {
		p.ProjectionType = types.ProjectionTypeAll
	}
	if len(ix.Projection.NonKeyAttributes) > 0 {
		p.NonKeyAttributes = ix.Projection.NonKeyAttributes
	}
	return p
}

// sdk returns the throughput, with 1/1 when the template gives none so that
// a provisioned table can still be created locally.
func (tp *throughput) sdk() *types.ProvisionedThroughput {
	r, w := int64(1), int64(1)
	if tp != nil {
		r, w = max(tp.Read, 1), max(tp.Write, 1)
	}
	return &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(r), WriteCapacityUnits: aws.Int64(w)}
}
