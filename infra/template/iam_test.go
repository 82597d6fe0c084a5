package template_test

import (
	"os"
	"strings"
	"testing"

	"licenseadmin/infra/template"
)

// TestGrants ensures the policies of the real template resolve to the
// ARNs a deployment gives, and Allowed matches them as IAM does.
func TestGrants(t *testing.T) {
	d := realDocument(t)
	dep := template.Deployment{Partition: "aws", Region: "eu-west-3", AccountID: "123456789012", StackName: "la",
		Params: map[string]string{"SenderEmail": "no-reply@example.com"}}
	bucket := "arn:aws:s3:::la-files-123456789012-eu-west-3"
	table := "arn:aws:dynamodb:eu-west-3:123456789012:table/Table"
	for _, tc := range []struct {
		fn, action, arn string
		want            bool
	}{
		{"ImportUsersFunction", "s3:GetObject", bucket + "/imports/a/b.csv", true},
		{"ImportUsersFunction", "s3:GetObject", bucket + "/exports/a.csv", false},
		{"ImportUsersFunction", "s3:ListBucket", bucket, true},
		{"ImportUsersFunction", "lambda:InvokeFunction", "arn:aws:lambda:eu-west-3:123456789012:function:la-import-users", true},
		{"ImportUsersFunction", "dynamodb:GetItem", table, true},
		{"ImportUsersFunction", "dynamodb:GetItem", table + "x", false},
		{"ProcessTableStreamFunction", "ses:SendEmail", "arn:aws:ses:eu-west-3:123456789012:identity/example.com", true},
		{"ProcessTableStreamFunction", "ses:SendEmail", "arn:aws:ses:eu-west-3:123456789012:identity/no-reply@example.com", true},
		{"ProcessTableStreamFunction", "ses:SendEmail", "arn:aws:ses:eu-west-3:123456789012:identity/other.com", false},
		{"ListUsersFunction", "dynamodb:Query", table + "/index/gsi1", true},
		{"GetUserFunction", "dynamodb:DeleteItem", table, false},
		{"ExportUserLogsFunction", "sqs:SendMessage", "arn:aws:sqs:eu-west-3:123456789012:ExportQueue", true},
	} {
		grants, err := d.Grants(tc.fn, dep)
		if err != nil {
			t.Fatal(err)
		}
		if got := template.Allowed(grants, tc.action, tc.arn); got != tc.want {
			t.Errorf("%s %s on %s: allowed %v, want %v", tc.fn, tc.action, tc.arn, got, tc.want)
		}
	}
	for _, id := range d.FunctionIDs() {
		if _, err := d.Grants(id, dep); err != nil {
			t.Error(err)
		}
	}
}

// TestGrantsExercised lists the grants that no recorded call used, when
// IAM_AUDIT names a file of calls recorded by the handler tests
// (IAM_RECORD=file go test ./shared/...): each must be removed or
// justified by a comment beside it in template.yaml. Skipped otherwise.
func TestGrantsExercised(t *testing.T) {
	path := os.Getenv("IAM_AUDIT")
	if path == "" {
		t.Skip("IAM_AUDIT is not set")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type call struct{ fn, action, arn string }
	var calls []call
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			calls = append(calls, call{f[0], f[1], f[2]})
		}
	}
	d := realDocument(t)
	dep := template.Deployment{Partition: "aws", Region: "us-east-1", AccountID: "123456789012", StackName: "license-admin",
		Params: map[string]string{"SenderEmail": "no-reply@license-admin.test"}}
	for _, id := range d.FunctionIDs() {
		grants, err := d.Grants(id, dep)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range grants {
			for _, r := range g.Resources {
				used := false
				for _, c := range calls {
					used = used || (c.fn == id && template.Allowed([]template.Grant{{Action: g.Action, Resources: []string{r}}}, c.action, c.arn))
				}
				if !used {
					t.Logf("%s: %s on %s: no test exercises it", id, g.Action, r)
				}
			}
		}
	}
}
