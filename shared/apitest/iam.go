package apitest

import (
	"context"
	"fmt"
	"maps"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ses"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// The IAM check: every AWS call a function's handler makes in a test is
// checked against that function's inline policies in template.yaml, so
// that a call its role would be denied in AWS fails the test instead of
// the deploy. The clients of an Env record the calls made with a context
// that names the function (AsFunction); Do, Deliver, Ingest, RunExports,
// the stream of WithEmail, MustAccount and MustLicenses name theirs. A
// test of a new function gets the check by calling its handler through
// one of them, or with AsFunction(ctx, "ItsLogicalId").
//
// IAM_RECORD=file appends every call checked, one "function action
// resource" line each, for an audit of the grants no test exercises.

// iamDeployment is the stack the tests stand for: the ARNs of the calls
// and of the policies' resources are built for it.
var iamDeployment = template.Deployment{
	Partition: "aws", Region: "us-east-1", AccountID: "123456789012", StackName: "license-admin",
	Params: map[string]string{"SenderEmail": SenderEmail, "SesConfigurationSet": ""},
}

type functionKey struct{}

// AsFunction returns ctx naming the template function (logical id) whose
// handler runs with it: the AWS calls made with it are checked against
// that function's policies.
func AsFunction(ctx context.Context, logicalID string) context.Context {
	return context.WithValue(ctx, functionKey{}, logicalID)
}

func functionOf(ctx context.Context) string {
	id, _ := ctx.Value(functionKey{}).(string)
	return id
}

// policies is template.yaml read once per test binary.
var policies = sync.OnceValues(func() (*policySet, error) {
	d, err := template.ParseDocument(licenseadmin.Template)
	if err != nil {
		return nil, err
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return nil, err
	}
	ps := &policySet{doc: d, grants: map[string][]template.Grant{}, routes: map[string]string{}, names: map[string]string{}}
	for _, id := range d.FunctionIDs() {
		if ps.grants[id], err = d.Grants(id, iamDeployment); err != nil {
			return nil, err
		}
		if ps.names[id], err = d.ResolveString(nameOf(d, id), iamDeployment); err != nil {
			return nil, err
		}
	}
	for _, fn := range tpl.Functions {
		for _, r := range fn.Routes {
			ps.routes[r.Key()] = fn.LogicalID
		}
	}
	ps.bucket, err = d.ResolveString(template.Path(d.Resources["FilesBucket"].Properties, "BucketName"), iamDeployment)
	return ps, err
})

// nameOf returns the FunctionName property of a function, or its
// logical id.
func nameOf(d *template.Document, id string) any {
	if v, ok := d.Resources[id].Properties["FunctionName"]; ok {
		return v
	}
	return id
}

type policySet struct {
	doc    *template.Document
	grants map[string][]template.Grant
	// routes maps a route key to its function; names a function to the
	// name it has once deployed.
	routes map[string]string
	names  map[string]string
	bucket string
}

// routeFunction returns the function that serves route key, "" if none.
func routeFunction(route string) string {
	ps, err := policies()
	if err != nil {
		return ""
	}
	return ps.routes[route]
}

// iamCheck holds an Env's calls that a policy does not allow.
type iamCheck struct {
	table, bucket string
	mu            sync.Mutex
	denied        map[string]bool
}

func newIAMCheck(tb testing.TB, table string) *iamCheck {
	c := &iamCheck{table: table, denied: map[string]bool{}}
	tb.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		msgs := slices.Sorted(maps.Keys(c.denied))
		for _, m := range msgs {
			tb.Errorf("IAM: %s", m)
		}
	})
	return c
}

// check records that the function ctx names called action on arn, and
// whether its policies allow it.
func (c *iamCheck) check(ctx context.Context, action, arn string) {
	fn := functionOf(ctx)
	if fn == "" {
		return
	}
	ps, err := policies()
	var msg string
	switch grants, ok := ps.grantsOf(fn); {
	case err != nil:
		msg = fmt.Sprintf("template.yaml: %v", err)
	case !ok:
		msg = fmt.Sprintf("%s is not a function of template.yaml", fn)
	case !template.Allowed(grants, action, arn):
		msg = fmt.Sprintf("%s calls %s on %s, which its policy in template.yaml does not allow", fn, action, arn)
	}
	record(fn, action, arn)
	if msg != "" {
		c.mu.Lock()
		c.denied[msg] = true
		c.mu.Unlock()
	}
}

func (ps *policySet) grantsOf(fn string) ([]template.Grant, bool) {
	if ps == nil {
		return nil, false
	}
	g, ok := ps.grants[fn]
	return g, ok
}

var recordMu sync.Mutex

// record appends the call to IAM_RECORD's file, when set.
func record(fn, action, arn string) {
	path := os.Getenv("IAM_RECORD")
	if path == "" {
		return
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s %s\n", fn, action, arn)
}

func (c *iamCheck) arn(service, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", iamDeployment.Partition, service, iamDeployment.Region, iamDeployment.AccountID, resource)
}

// tableARN is the ARN of table as deployed: the test's table stands for
// the template's Table.
func (c *iamCheck) tableARN(table *string, index *string) string {
	name := aws.ToString(table)
	if name == c.table {
		name = template.TableLogicalID
	}
	arn := c.arn("dynamodb", "table/"+name)
	if index != nil {
		arn += "/index/" + *index
	}
	return arn
}

// objectARN is the ARN of bucket (the test's stands for the files
// bucket) and key ("" for the bucket itself).
func (c *iamCheck) objectARN(bucket, key *string) string {
	name := aws.ToString(bucket)
	if ps, _ := policies(); ps != nil && name == c.bucket {
		name = ps.bucket
	}
	arn := "arn:" + iamDeployment.Partition + ":s3:::" + name
	if key != nil {
		arn += "/" + *key
	}
	return arn
}

// middleware returns the client option that checks each call.
func (c *iamCheck) middleware(calls func(ctx context.Context, in any) [][2]string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("iamCheck", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			for _, call := range calls(ctx, in.Parameters) {
				c.check(ctx, call[0], call[1])
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	}
}

// dynamoDB is the DynamoDB client option of the check: each call's IAM
// actions (a transaction's inner ones: PutItem, UpdateItem, DeleteItem,
// ConditionCheckItem) on the table or index ARN.
func (c *iamCheck) dynamoDB(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, c.middleware(func(ctx context.Context, in any) [][2]string {
		op := "dynamodb:" + middleware.GetOperationName(ctx)
		switch in := in.(type) {
		case *dynamodb.GetItemInput:
			return [][2]string{{op, c.tableARN(in.TableName, nil)}}
		case *dynamodb.PutItemInput:
			return [][2]string{{op, c.tableARN(in.TableName, nil)}}
		case *dynamodb.UpdateItemInput:
			return [][2]string{{op, c.tableARN(in.TableName, nil)}}
		case *dynamodb.DeleteItemInput:
			return [][2]string{{op, c.tableARN(in.TableName, nil)}}
		case *dynamodb.QueryInput:
			return [][2]string{{op, c.tableARN(in.TableName, in.IndexName)}}
		case *dynamodb.ScanInput:
			return [][2]string{{op, c.tableARN(in.TableName, in.IndexName)}}
		case *dynamodb.BatchGetItemInput:
			var out [][2]string
			for t := range in.RequestItems {
				out = append(out, [2]string{op, c.tableARN(&t, nil)})
			}
			return out
		case *dynamodb.BatchWriteItemInput:
			var out [][2]string
			for t := range in.RequestItems {
				out = append(out, [2]string{op, c.tableARN(&t, nil)})
			}
			return out
		case *dynamodb.TransactGetItemsInput:
			var out [][2]string
			for _, it := range in.TransactItems {
				if it.Get != nil {
					out = append(out, [2]string{"dynamodb:GetItem", c.tableARN(it.Get.TableName, nil)})
				}
			}
			return out
		case *dynamodb.TransactWriteItemsInput:
			var out [][2]string
			for _, it := range in.TransactItems {
				switch {
				case it.Put != nil:
					out = append(out, [2]string{"dynamodb:PutItem", c.tableARN(it.Put.TableName, nil)})
				case it.Update != nil:
					out = append(out, [2]string{"dynamodb:UpdateItem", c.tableARN(it.Update.TableName, nil)})
				case it.Delete != nil:
					out = append(out, [2]string{"dynamodb:DeleteItem", c.tableARN(it.Delete.TableName, nil)})
				case it.ConditionCheck != nil:
					out = append(out, [2]string{"dynamodb:ConditionCheckItem", c.tableARN(it.ConditionCheck.TableName, nil)})
				}
			}
			return out
		}
		return [][2]string{{op, c.arn("dynamodb", "table/"+c.table)}}
	}))
}

// s3 is the S3 client option of the check (presigned requests included:
// they act with the signer's rights).
func (c *iamCheck) s3(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, c.middleware(func(ctx context.Context, in any) [][2]string {
		switch in := in.(type) {
		case *s3.GetObjectInput:
			if in.VersionId != nil {
				return [][2]string{{"s3:GetObjectVersion", c.objectARN(in.Bucket, in.Key)}}
			}
			return [][2]string{{"s3:GetObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.HeadObjectInput:
			return [][2]string{{"s3:GetObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.PutObjectInput:
			return [][2]string{{"s3:PutObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.CreateMultipartUploadInput:
			return [][2]string{{"s3:PutObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.UploadPartInput:
			return [][2]string{{"s3:PutObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.CompleteMultipartUploadInput:
			return [][2]string{{"s3:PutObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.AbortMultipartUploadInput:
			return [][2]string{{"s3:AbortMultipartUpload", c.objectARN(in.Bucket, in.Key)}}
		case *s3.DeleteObjectInput:
			return [][2]string{{"s3:DeleteObject", c.objectARN(in.Bucket, in.Key)}}
		case *s3.DeleteObjectsInput:
			// IAM authorizes DeleteObjects per object, as s3:DeleteObject.
			var calls [][2]string
			if in.Delete != nil {
				for _, o := range in.Delete.Objects {
					calls = append(calls, [2]string{"s3:DeleteObject", c.objectARN(in.Bucket, o.Key)})
				}
			}
			return calls
		case *s3.ListObjectsV2Input:
			return [][2]string{{"s3:ListBucket", c.objectARN(in.Bucket, nil)}}
		}
		return [][2]string{{"s3:" + middleware.GetOperationName(ctx), c.objectARN(aws.String(c.bucket), nil)}}
	}))
}

// ses is the SES client option of the check: a send on the identity of
// its From address (and its configuration set).
func (c *iamCheck) ses(o *ses.Options) {
	o.APIOptions = append(o.APIOptions, c.middleware(func(ctx context.Context, in any) [][2]string {
		op := "ses:" + middleware.GetOperationName(ctx)
		var source, set *string
		switch in := in.(type) {
		case *ses.SendEmailInput:
			source, set = in.Source, in.ConfigurationSetName
		case *ses.SendRawEmailInput:
			source, set = in.Source, in.ConfigurationSetName
		}
		from := aws.ToString(source)
		if a, err := mail.ParseAddress(from); err == nil {
			from = a.Address
		}
		out := [][2]string{{op, c.arn("ses", "identity/"+strings.ToLower(from))}}
		if set != nil {
			out = append(out, [2]string{op, c.arn("ses", "configuration-set/"+*set)})
		}
		return out
	}))
}

// invoked checks that the function ctx names may invoke itself
// asynchronously (the import's continuation).
func (c *iamCheck) invoked(ctx context.Context) {
	ps, err := policies()
	if err != nil {
		c.check(ctx, "lambda:InvokeFunction", "")
		return
	}
	c.check(ctx, "lambda:InvokeFunction", c.arn("lambda", "function:"+ps.names[functionOf(ctx)]))
}

// sent checks that the function ctx names may send to the queue id of
// the template.
func (c *iamCheck) sent(ctx context.Context, queueID string) {
	c.check(ctx, "sqs:SendMessage", c.arn("sqs", queueID))
}

// IAMDenied returns, and forgets, the calls of this test so far that a
// function's policy does not allow (each would fail the test at its end):
// for tests of the check itself.
func (e *Env) IAMDenied() []string {
	e.iam.mu.Lock()
	defer e.iam.mu.Unlock()
	out := slices.Sorted(maps.Keys(e.iam.denied))
	e.iam.denied = map[string]bool{}
	return out
}
