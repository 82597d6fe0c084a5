package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	licenseadmin "licenseadmin"
	"licenseadmin/infra/stack"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
)

// cannedDynamoDB answers the DynamoDB JSON protocol with fixed bodies per
// operation (X-Amz-Target), so that a benchmark of the API measures the
// Go side of a request only: the local gateway (routing, JWT, the Lambda
// event), the handler, the SDK's serialising, signing and parsing, the
// logs and metrics. make bench measures DynamoDB's side against DynamoDB
// Local.
func cannedDynamoDB(tb testing.TB, bodies map[string]string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
		body, ok := bodies[op]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"com.amazon.coral.validate#ValidationException","message":"canned DynamoDB has no answer to %s"}`, op)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, body)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

const benchUserItem = `{"pk":{"S":"USER#u1"},"sk":{"S":"USER"},"gsi1pk":{"S":"ACCT#a1#USERS"},"gsi1sk":{"S":"u1"},` +
	`"id":{"S":"u1"},"accountId":{"S":"a1"},"email":{"S":"ada@acme.test"},"firstName":{"S":"Ada"},"lastName":{"S":"Lovelace"},` +
	`"language":{"S":"en"},"role":{"S":"user"},"status":{"S":"active"},"portal2fa":{"BOOL":false},"protectedReplies":{"S":"none"},` +
	`"createdAt":{"S":"2026-11-01T10:00:00.000000000Z"},"updatedAt":{"S":"2026-11-01T10:00:00.000000000Z"},` +
	`"version":{"N":"3"},"logGen":{"N":"0"},"tier":{"S":"eco"},"assignedAt":{"S":"2026-11-01T10:00:00.000000000Z"}}`

const benchClaimItem = `{"pk":{"S":"EMAIL#admin@acme.test"},"sk":{"S":"EMAIL"},"accountId":{"S":"a1"},"userId":{"S":"admin1"},"role":{"S":"admin"}}`

// benchTargetItem is the user a benchmarked transfer gives the license
// to: benchUserItem without one.
const benchTargetItem = `{"pk":{"S":"USER#u2"},"sk":{"S":"USER"},"gsi1pk":{"S":"ACCT#a1#USERS"},"gsi1sk":{"S":"u2"},` +
	`"id":{"S":"u2"},"accountId":{"S":"a1"},"email":{"S":"grace@acme.test"},"firstName":{"S":"Grace"},"lastName":{"S":"Hopper"},` +
	`"language":{"S":"en"},"role":{"S":"user"},"status":{"S":"active"},"portal2fa":{"BOOL":false},"protectedReplies":{"S":"none"},` +
	`"createdAt":{"S":"2026-11-01T10:00:00.000000000Z"},"updatedAt":{"S":"2026-11-01T10:00:00.000000000Z"},` +
	`"version":{"N":"3"},"logGen":{"N":"0"}}`

// benchPage is a Query answer of n users (benchUserItem with other ids),
// as a full page of the user list reads it.
func benchPage(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = strings.ReplaceAll(benchUserItem, `"u1"`, fmt.Sprintf(`"u%03d"`, i))
	}
	return `{"Count":` + fmt.Sprint(n) + `,"Items":[` + strings.Join(items, ",") + `],"LastEvaluatedKey":{"pk":{"S":"USER#u999"},"sk":{"S":"USER"},"gsi1pk":{"S":"ACCT#a1#USERS"},"gsi1sk":{"S":"u999"}}}`
}

// benchSearchPage is a Query answer of n search index entries (users as
// benchUserItem's, with other ids, each found by its first name, "ada"),
// as a full page of GET /v1/users?q=ada reads it. viewVersion is the
// store's searchViewVersion: another would make each page read its users
// from their items.
func benchSearchPage(n int) string {
	quote := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	items := make([]string, n)
	for i := range items {
		u := licadmin.User{ID: fmt.Sprintf("u%03d", i), Email: "ada@acme.test", FirstName: "Ada", LastName: "Lovelace",
			Language: "en", Role: licadmin.RoleUser, Status: licadmin.StatusActive, License: &licadmin.License{Tier: licadmin.Eco, AssignedAt: at},
			Security: licadmin.Security{ProtectedReplies: "none"}, CreatedAt: at, UpdatedAt: at}
		view, _ := json.Marshal(u)
		items[i] = `{"pk":{"S":"SEARCH#a1#a"},"sk":{"S":` + quote("ada\x01f\x01"+u.ID) + `},"status":{"S":"active"},"tier":{"S":"eco"},` +
			`"view":{"S":` + quote(string(view)) + `},"viewVersion":{"N":"1"},"searchEmail":{"S":` + quote("ada@acme.test\x01e") + `},` +
			`"searchFirstName":{"S":` + quote("ada\x01f") + `},"searchLastName":{"S":` + quote("lovelace\x01l") + `}}`
	}
	return `{"Count":` + fmt.Sprint(n) + `,"Items":[` + strings.Join(items, ",") + `],"LastEvaluatedKey":{"pk":{"S":"SEARCH#a1#a"},"sk":{"S":` + quote("ada\x01f\x01u999") + `}}}`
}

// BenchmarkAPI sends license changes and a page of the user list through
// the local HTTP API over loopback with keep-alive, as make bench does,
// with DynamoDB answered at once (cannedDynamoDB): the CPU time and
// allocations that the project adds to DynamoDB's own time per request.
// Modify reads the admin's claim and its user in one BatchGetItem,
// transfer the claim and two users; both then commit one
// TransactWriteItems. The list reads the caller's
// claim and a Query of 51 users (a page of 50 and the one that tells a
// next page exists), the search the same with 51 search index entries;
// the first page of a list also creates the cursor key (PutItem), once.
func BenchmarkAPI(b *testing.B) {
	for _, bc := range []struct {
		name, method, path, body string
		query                    string // the Query's answer
	}{
		{"modify", http.MethodPatch, "/v1/users/u1/license", `{"tier":"advanced"}`, ""},
		{"transfer", http.MethodPost, "/v1/users/u1/license/transfer", `{"toUserId":"u2"}`, ""},
		{"list", http.MethodGet, "/v1/users?limit=50", "", benchPage(51)},
		{"search", http.MethodGet, "/v1/users?limit=50&q=ada", "", benchSearchPage(51)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			read := benchUserItem
			if bc.method == http.MethodGet {
				read = benchClaimItem // a list reads only the caller's claim
			}
			endpoint := cannedDynamoDB(b, map[string]string{
				"GetItem":            `{"Item":` + read + `}`,
				"BatchGetItem":       `{"Responses":{"bench":[` + benchClaimItem + `,` + benchUserItem + `,` + benchTargetItem + `]},"UnprocessedKeys":{}}`,
				"TransactWriteItems": `{}`,
				"Query":              bc.query,
				"PutItem":            `{}`,
			})
			cfg := app.Config{TableName: "bench", Region: "us-east-1", DynamoDBEndpoint: endpoint, Metrics: true}
			db := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
				Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
			a := app.NewWithClient(cfg, db)
			a.API.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			a.Metrics.W = io.Discard
			tpl, err := template.Parse(licenseadmin.Template)
			if err != nil {
				b.Fatal(err)
			}
			key, err := stack.LoadOrCreateKey(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			srv, err := stack.NewAPI(tpl, a, key, log.New(io.Discard, "", 0))
			if err != nil {
				b.Fatal(err)
			}
			api := httptest.NewServer(srv)
			defer api.Close()
			token, err := stack.IssueToken(key, "admin@acme.test", true, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			client := api.Client()
			body := []byte(bc.body)
			send := func() []byte {
				req, _ := http.NewRequestWithContext(context.Background(), bc.method, api.URL+bc.path, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d: %s", resp.StatusCode, out)
				}
				return out
			}
			// A first request warms the connections; the list's admin is
			// remembered from here on, as in a warm function.
			if out := send(); bc.query != "" {
				var p struct{ Items []json.RawMessage }
				if err := json.Unmarshal(out, &p); err != nil || len(p.Items) != 50 {
					b.Fatalf("a page of %d users (%v), want 50", len(p.Items), err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				send()
			}
		})
	}
}
