package template_test

import (
	"reflect"
	"testing"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// TestS3Sources ensures S3 events are read with their bucket, event types
// and key filter: from the test template (no filter), and from the real
// one, where uploads under imports/ ending in .csv, and any file dropped
// under drop/, start the import.
func TestS3Sources(t *testing.T) {
	got, err := mustParseFile(t, "testdata/template.yaml").S3Sources()
	if err != nil {
		t.Fatal(err)
	}
	want := []template.S3Source{{Function: "ImportFunction", Bucket: "Bucket", Events: []string{"s3:ObjectCreated:*"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("test template: %+v, want %+v", got, want)
	}
	real, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	got, err = real.S3Sources()
	if err != nil {
		t.Fatal(err)
	}
	want = []template.S3Source{
		{Function: "ImportUsersFunction", Bucket: "FilesBucket", Events: []string{"s3:ObjectCreated:*"}, Prefix: "drop/"},
		{Function: "ImportUsersFunction", Bucket: "FilesBucket", Events: []string{"s3:ObjectCreated:*"}, Prefix: "imports/", Suffix: ".csv"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("template.yaml: %+v, want %+v", got, want)
	}
	bad, err := template.Parse([]byte("Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        U:\n          Type: S3\n          Properties:\n            Bucket: not-a-ref\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.S3Sources(); err == nil {
		t.Fatal("an S3 event on a bucket that is not the template's was accepted")
	}
}
