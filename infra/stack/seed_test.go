package stack

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/operator"
)

// TestSeededSampleEvents feeds every sample event of infra/events through
// its function's real handler (the one its main.go hands to lambda.Start,
// with the Lambda library's own decoding), each against a fresh table
// holding the world `seed` creates, and checks the answer: what
// `sam local invoke F -e infra/events/<f>.json` answers after the seed.
func TestSeededSampleEvents(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample events: %v", err)
	}
	// The status an API event answers; every other event must succeed
	// (no error, no failed batch item).
	status := map[string]int{
		"activate": 200, "activation-page": 200, "assign-license": 200, "create-domain": 201, "create-import": 201,
		"create-user": 201, "delete-domain": 204, "delete-pool-licenses": 200, "delete-user": 204, "export-user-logs": 202,
		"get-export": 200, "get-import-template": 200, "get-import": 200, "get-license-pool": 200, "get-stats": 200,
		"get-user-stats": 200, "get-user": 200, "list-domains": 200, "list-my-logs": 200, "list-user-logs": 200,
		"list-users": 200, "modify-license": 200, "remove-license": 200, "send-activation-email": 202,
		"set-alert-threshold": 200, "transfer-license": 200, "update-user": 200,
		"export-my-logs": 202, "get-activation-emails": 200, "list-imports": 200, "send-activation-emails": 202,
		// No TXT record is published for the sample domain: the check runs
		// and says so.
		"verify-domain": 422,
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			env := apitest.New(t)
			env.WithEmail(t)
			env.UseExports()
			a := env.App
			if err := seedSamples(context.Background(), a, time.Now().UTC()); err != nil {
				t.Fatalf("seed: %v", err)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// The sample S3 event names the local bucket; the test's has its own name.
			b = []byte(strings.ReplaceAll(string(b), `"name": "`+defaultBucket+`"`, `"name": "`+a.Config.S3.Bucket+`"`))
			fn := functionOf(name)
			var h any
			switch fn {
			case "CreateAccountFunction":
				h = operator.CreateAccountHandler(a.Operator)
			case "AddLicensesFunction":
				h = operator.AddLicensesHandler(a.Operator)
			case "ApproveDomainFunction":
				h = operator.ApproveDomainHandler(a.Operator)
			case "ProcessTableStreamFunction":
				h = a.Stream.Handle
			case "ImportUsersFunction":
				h = importer.Handler(a.Imports)
			default:
				if q, ok := queueHandlers(sameApp(a))[fn]; ok {
					h = q
				} else if api, ok := apiHandlers(sameApp(a))[fn]; ok {
					h = api
				} else {
					t.Fatalf("no handler for %s (event %s)", fn, name)
				}
			}
			out, err := lambda.NewHandler(h).Invoke(context.Background(), b)
			if err != nil {
				t.Fatalf("%s answered an error: %v", fn, err)
			}
			if want, ok := status[name]; ok {
				var resp events.APIGatewayV2HTTPResponse
				if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != want {
					t.Fatalf("%s answered %s, want status %d", fn, out, want)
				}
				return
			}
			if want, ok := map[string]string{"import-users": sampleImportedUser, "import-users-drop": "alan.turing@acme.test"}[name]; ok {
				if u, err := a.Store.FindUser(context.Background(), "", want); err != nil || u == nil {
					t.Fatalf("the import's user %s: %+v (%v)", want, u, err)
				}
			}
			var batch struct {
				BatchItemFailures []any `json:"batchItemFailures"`
			}
			if err := json.Unmarshal(out, &batch); err == nil && len(batch.BatchItemFailures) > 0 {
				t.Fatalf("%s failed items: %s", fn, out)
			}
		})
	}
}

// functionOf returns the template's logical id of the function a sample
// event is for: the event is named after the function's directory.
func functionOf(event string) string {
	event = strings.TrimSuffix(strings.TrimSuffix(event, "-continue"), "-drop")
	var id strings.Builder
	for _, part := range strings.Split(event, "-") {
		id.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return id.String() + "Function"
}
