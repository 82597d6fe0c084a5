package template_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// TestRealTemplateStream ensures the table has the stream that the outbox
// relies on, with both images (low-pool alerts compare the pool before and
// after), so that DynamoDB Local's table has it too; and that only the
// stream function may send email.
func TestRealTemplateStream(t *testing.T) {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	in, err := tpl.TableInput("x")
	if err != nil {
		t.Fatal(err)
	}
	if s := in.StreamSpecification; s == nil || !*s.StreamEnabled || s.StreamViewType != types.StreamViewTypeNewAndOldImages {
		t.Fatalf("stream = %+v, want NEW_AND_OLD_IMAGES", s)
	}
	for _, fn := range tpl.Functions {
		b, err := json.Marshal(fn.Policies)
		if err != nil {
			t.Fatal(err)
		}
		sends := strings.Contains(string(b), `"ses:`)
		if want := fn.LogicalID == "ProcessTableStreamFunction"; sends != want {
			t.Errorf("%s: may use SES = %v, want %v: %s", fn.LogicalID, sends, want, b)
		}
	}
}
