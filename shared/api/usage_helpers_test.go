package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
	"github.com/oklog/ulid/v2"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/usage"
)

// Helpers of the usage, logs, exports and statistics tests.

const (
	routeUserLogs  = "GET /v1/users/{userId}/logs"
	routeMyLogs    = "GET /v1/me/logs"
	routeExport    = "POST /v1/users/{userId}/logs/export"
	routeGetExport = "GET /v1/exports/{exportId}"
	routeMyExport  = "POST /v1/me/logs/export"
	routeStats     = "GET /v1/stats"
	routeUserStats = "GET /v1/users/{userId}/stats"
)

// usageFixture is the fixture of license_test.go with two users of the
// account, ada (a plain user) and bob, and the handlers of the usage routes.
type usageFixture struct {
	*fixture
	ada, bob                                        string // user ids
	adaEmail, bobEmail                              string
	logs, mine, export, getExport, stats, userStats func(apitest.Request) *apitest.Response
	exportMine                                      func(apitest.Request) *apitest.Response
	del                                             func(apitest.Request) *apitest.Response
}

// outliveMemory moves the ingest function's clock past what it remembers
// of users (usage.RememberUsers), as a second's wait would: the next
// batch reads its users again.
func (f *fixture) outliveMemory() {
	f.memoryOffset += usage.RememberUsers + time.Millisecond
	offset := f.memoryOffset
	f.App.Usage.Now = func() time.Time { return time.Now().Add(offset) }
}

func newUsageFixture(t *testing.T) *usageFixture {
	t.Helper()
	f := &usageFixture{fixture: newFixture(t), adaEmail: "ada@acme.test", bobEmail: "bob@acme.test"}
	f.ada, f.bob = f.user(t, f.adaEmail), f.user(t, f.bobEmail)
	f.App.SetLogger(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	call := func(h apigw.Handler) func(apitest.Request) *apitest.Response {
		return func(r apitest.Request) *apitest.Response { return apitest.Do(t, h, r) }
	}
	a := f.App
	f.logs, f.mine, f.export, f.getExport = call(api.ListUserLogs(a)), call(api.ListMyLogs(a)), call(api.ExportUserLogs(a)), call(api.GetExport(a))
	f.stats, f.userStats, f.del = call(api.GetStats(a)), call(api.GetUserStats(a)), call(api.DeleteUser(a))
	f.exportMine = call(api.ExportMyLogs(a))
	return f
}

var eventSeq struct {
	sync.Mutex
	n int
}

// event returns a usage message of the user with email in account acct.
func event(acct, email string, typ licadmin.EventType, at time.Time) usage.Message {
	eventSeq.Lock()
	eventSeq.n++
	n := eventSeq.n
	eventSeq.Unlock()
	return usage.Message{
		EventID: ulid.Make().String(), AccountID: acct, Email: email, Type: string(typ),
		At: at.UTC().Format(time.RFC3339Nano), MessageRef: fmt.Sprintf("msg-%d", n),
		Recipients: []string{"client@example.org"}, Bytes: 1000, IP: "203.0.113.5",
	}
}

// ingest delivers msgs as one batch and fails unless every one succeeded.
func ingest(t *testing.T, env *apitest.Env, msgs ...any) {
	t.Helper()
	if resp := env.Ingest(t, msgs...); len(resp.BatchItemFailures) > 0 {
		t.Fatalf("batch item failures %v, want none", resp.BatchItemFailures)
	}
}

// logPage is the body of a log list.
type logPage struct {
	Items      []licadmin.LogEntry `json:"items"`
	NextCursor *string             `json:"nextCursor"`
}

// readLogs decodes a 200 log list, checking the list shape.
func readLogs(t *testing.T, r *apitest.Response) logPage {
	t.Helper()
	var p logPage
	r.Page(t, &p)
	return p
}

// userLogs lists a user's log as caller with query.
func (f *usageFixture) userLogs(t *testing.T, caller, userID string, query map[string]string) logPage {
	t.Helper()
	return readLogs(t, f.logs(apitest.Request{Route: routeUserLogs, Params: map[string]string{"userId": userID}, Email: caller, Query: query}))
}

// refs returns the message references of entries, in order.
func refs(entries []licadmin.LogEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.MessageRef)
	}
	return out
}

// countItems counts the table's items whose pk starts with prefix (and
// whose sk starts with skPrefix).
func countItems(t *testing.T, env *apitest.Env, prefix, skPrefix string) int {
	t.Helper()
	n := 0
	for _, it := range env.Scan(t) {
		if strings.HasPrefix(avString(it["pk"]), prefix) && strings.HasPrefix(avString(it["sk"]), skPrefix) {
			n++
		}
	}
	return n
}

// readCounter counts DynamoDB requests per operation and the items they
// returned, so that a test can prove what a request reads.
type readCounter struct {
	mu    sync.Mutex
	calls map[string]int
	items int
}

// option returns the DynamoDB client option that counts.
func (c *readCounter) option() func(*dynamodb.Options) {
	mw := middleware.InitializeMiddlewareFunc("countReads", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleInitialize(ctx, in)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.calls[middleware.GetOperationName(ctx)]++
		switch o := out.Result.(type) {
		case *dynamodb.QueryOutput:
			c.items += len(o.Items)
		case *dynamodb.GetItemOutput:
			if o.Item != nil {
				c.items++
			}
		case *dynamodb.BatchGetItemOutput:
			for _, items := range o.Responses {
				c.items += len(items)
			}
		case *dynamodb.ScanOutput:
			c.items += len(o.Items)
		}
		return out, md, err
	})
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Initialize.Add(mw, middleware.Before) })
	}
}

func (c *readCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.items = map[string]int{}, 0
}

// snapshot renders the counts, e.g. "BatchGetItem=1 Query=2 items=9".
func (c *readCounter) snapshot() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for op, n := range c.calls {
		parts = append(parts, fmt.Sprintf("%s=%d", op, n))
	}
	sort.Strings(parts)
	return strings.Join(append(parts, fmt.Sprintf("items=%d", c.items)), " ")
}

// wantKeys fails unless the JSON object body has exactly keys.
func wantKeys(t *testing.T, body []byte, keys ...string) {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	var got []string
	for k := range raw {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	if !slices.Equal(got, keys) {
		t.Fatalf("keys %v, want %v (body %s)", got, keys, body)
	}
}

// countReads makes every service of the fixture's App count its DynamoDB
// requests and the items they return.
func (f *usageFixture) countReads() *readCounter {
	c := &readCounter{calls: map[string]int{}}
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), c.option())
	return c
}

// recorderDelivery returns a function that hands stream records to the
// recording function's handler (App.UsageRecorder, its logs discarded) as
// one batch, as its event source mapping would, and returns its answer.
func recorderDelivery(t *testing.T, env *apitest.Env) func([]events.DynamoDBEventRecord) events.DynamoDBEventResponse {
	recorder := *env.App.UsageRecorder
	recorder.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	return func(recs []events.DynamoDBEventRecord) events.DynamoDBEventResponse {
		t.Helper()
		resp, err := recorder.HandleStream(apitest.AsFunction(context.Background(), "RecordUsageFunction"), events.DynamoDBEvent{Records: recs})
		if err != nil {
			t.Fatalf("deliver to the recording function: %v", err)
		}
		return resp
	}
}
