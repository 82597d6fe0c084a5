package dynamolocal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// DefaultRegion is the region of local clients when AWS_REGION is unset.
// DynamoDB Local runs with -sharedDb, so the region only has to be valid.
const DefaultRegion = "us-east-1"

// tableActiveTimeout bounds how long CreateTable waits for ACTIVE.
const tableActiveTimeout = 30 * time.Second

// Client returns a DynamoDB client for a local endpoint, with static dummy
// credentials ("local"/"local") so that no AWS profile or network lookup is
// involved, and the region from AWS_REGION or DefaultRegion. optFns run last
// and may add middleware (fault injection in tests). It returns an error
// only when endpoint is empty.
func Client(ctx context.Context, endpoint string, optFns ...func(*dynamodb.Options)) (*dynamodb.Client, error) {
	if endpoint == "" {
		return nil, errors.New("dynamodb client: empty endpoint")
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = DefaultRegion
	}
	return dynamodb.New(dynamodb.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	}, optFns...), nil
}

// CreateTable creates the table name as template.yaml defines it (keys,
// indexes, billing mode), enables its time-to-live attribute, and waits
// until the table is ACTIVE. It returns the CreateTable error as is (a
// *types.ResourceInUseException when the table exists); a TTL setting that
// DynamoDB Local refuses is ignored, since nothing local depends on expiry.
func CreateTable(ctx context.Context, client *dynamodb.Client, name string) error {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	in, err := tpl.TableInput(name)
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	if _, err := client.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, tableActiveTimeout); err != nil {
		return fmt.Errorf("create table %s: wait for ACTIVE: %w", name, err)
	}
	if attr := tpl.TTLAttribute(); attr != "" {
		_, _ = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: aws.String(attr),
				Enabled:       aws.Bool(true),
			},
		})
	}
	return nil
}

// EnsureTable creates the table name unless it exists, and reports whether
// it created it; the local stack calls it on every start.
func EnsureTable(ctx context.Context, client *dynamodb.Client, name string) (created bool, err error) {
	_, err = client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		return false, nil
	case !errors.As(err, &notFound):
		return false, fmt.Errorf("describe table %s: %w", name, err)
	}
	if err := CreateTable(ctx, client, name); err != nil {
		return false, err
	}
	return true, nil
}
