// Package apitest runs License Admin's handlers against DynamoDB Local in
// tests: a fresh table per test, the real App wiring, and API Gateway HTTP
// API payload 2.0 events built like the local API (and API Gateway) builds
// them. It is the httptest of this project.
package apitest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/seslocal"
	"licenseadmin/infra/streamlocal"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
	"licenseadmin/shared/dnstxt"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/store"
)

// Env is one test's system: a fresh table and the App over it.
type Env struct {
	App   *app.App
	DB    *dynamodb.Client
	Table string
	// S3 is the test's S3, with the import bucket (s3.go).
	S3 *S3
	// counts reads the table's stream for the usage recorder (usage.go).
	counts *streamlocal.Poller

	// iam checks the AWS calls of functions' handlers against their
	// policies (iam.go).
	iam *iamCheck
}

// RunTests runs a test binary's tests and then stops the peers they
// shared (DynamoDB Local and the SES emulator), if they started; call it
// from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(apitest.RunTests(m)) }
func RunTests(m *testing.M) int {
	code := dynamolocal.RunTests(m)
	seslocal.StopShared()
	return code
}

// New returns an Env over a fresh DynamoDB Local table. optFns adjust the
// DynamoDB client the App uses (fault injection, request counting).
func New(tb testing.TB, optFns ...func(*dynamodb.Options)) *Env {
	tb.Helper()
	raw, table := dynamolocal.NewTable(tb)
	iam := newIAMCheck(tb, table)
	db := dynamodb.New(raw.Options(), append(append([]func(*dynamodb.Options){app.DynamoDBRetries}, optFns...), iam.dynamoDB)...)
	a := app.NewWithClient(app.Config{TableName: table, WebmailDomains: licadmin.DefaultWebmailDomains}, db)
	// Request logs would drown test output; handlers' behaviour is asserted.
	a.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	a.API.Logger = a.Logger
	// Tests never ask real DNS: domain verification asks a loopback port
	// where nothing answers (refused at once) unless a test serves records.
	a.Domains.TXT = &dnstxt.Resolver{Server: "127.0.0.1:9", Timeout: time.Second}
	e := &Env{App: a, DB: raw, Table: table, iam: iam}
	e.useS3(tb)
	return e
}

// MustAccount creates an account whose first admin is adminEmail and
// returns the account and admin ids.
func (e *Env) MustAccount(tb testing.TB, name, adminEmail string) (accountID, adminID string) {
	tb.Helper()
	ctx := AsFunction(context.Background(), "CreateAccountFunction")
	out, err := e.App.Operator.CreateAccount(ctx, operator.CreateAccountInput{Name: name, AdminEmail: adminEmail})
	if err != nil {
		tb.Fatalf("create account %s: %v", name, err)
	}
	return out.AccountID, out.AdminUserID
}

var orderSeq atomic.Int64

// MustCaller returns the caller whose token carries email, as the table
// records it (its account, user id and role).
func (e *Env) MustCaller(tb testing.TB, email string) *licadmin.Caller {
	tb.Helper()
	c, _, err := e.App.Store.LoadCaller(context.Background(), email)
	if err != nil || c == nil {
		tb.Fatalf("load caller %s: %v", email, err)
	}
	return c
}

// MustLicenses adds n purchased licenses of tier to an account's pool.
func (e *Env) MustLicenses(tb testing.TB, accountID string, tier licadmin.Tier, n int64) {
	tb.Helper()
	_, err := e.App.Operator.AddLicenses(AsFunction(context.Background(), "AddLicensesFunction"), operator.AddLicensesInput{
		AccountID: accountID, Tier: string(tier), Quantity: n, OrderID: fmt.Sprintf("order-%d", orderSeq.Add(1)),
	})
	if err != nil {
		tb.Fatalf("add %d %s licenses: %v", n, tier, err)
	}
}

// Request describes one HTTP call.
type Request struct {
	// Route is API Gateway's route key, e.g. "POST /v1/users/{userId}/license".
	Route string
	// Params fill the route's {placeholders}.
	Params map[string]string
	Query  map[string]string
	// Email is the verified token's email claim; empty means no token.
	Email string
	// Unverified leaves email_verified out of the token's claims, as an
	// identity provider that did not verify the address does.
	Unverified bool
	Body       any
	Headers    map[string]string
}

// Event builds the API Gateway HTTP API (payload 2.0) event for r.
func (r Request) Event() events.APIGatewayV2HTTPRequest {
	method, path, _ := strings.Cut(r.Route, " ")
	raw := path
	for k, v := range r.Params {
		raw = strings.ReplaceAll(raw, "{"+k+"}", v)
	}
	var body string
	switch b := r.Body.(type) {
	case nil:
	case string:
		body = b
	case []byte:
		body = string(b)
	default:
		j, _ := json.Marshal(b)
		body = string(j)
	}
	headers := map[string]string{"user-agent": "apitest"}
	if body != "" {
		headers["content-type"] = "application/json"
	}
	for k, v := range r.Headers {
		headers[strings.ToLower(k)] = v
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              r.Route,
		RawPath:               raw,
		Headers:               headers,
		QueryStringParameters: r.Query,
		PathParameters:        r.Params,
		Body:                  body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID:  "123456789012",
			APIID:      "local",
			RequestID:  fmt.Sprintf("req-%d", reqSeq.Add(1)),
			RouteKey:   r.Route,
			Stage:      "$default",
			TimeEpoch:  time.Now().UnixMilli(),
			DomainName: "localhost",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: method, Path: raw, Protocol: "HTTP/1.1", SourceIP: "198.51.100.7", UserAgent: "apitest",
			},
		},
	}
	if r.Email != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
				Claims: map[string]string{"email": r.Email, "sub": "sub-" + r.Email},
			},
		}
		if !r.Unverified {
			// API Gateway writes a boolean claim as "true".
			ev.RequestContext.Authorizer.JWT.Claims["email_verified"] = "true"
		}
	}
	return ev
}

var reqSeq atomic.Int64

// Response is a handler's answer with helpers to read it.
type Response struct {
	events.APIGatewayV2HTTPResponse
	RequestID string
}

// Do calls h with r's event, as the function that serves r.Route in
// template.yaml: its AWS calls are checked against that function's policy.
func Do(tb testing.TB, h apigw.Handler, r Request) *Response {
	tb.Helper()
	ev := r.Event()
	resp, err := h(AsFunction(context.Background(), routeFunction(r.Route)), ev)
	if err != nil {
		tb.Fatalf("%s: handler returned an error (API Gateway would answer 500): %v", r.Route, err)
	}
	return &Response{APIGatewayV2HTTPResponse: resp, RequestID: ev.RequestContext.RequestID}
}

// Decode decodes the JSON body into v.
func (r *Response) Decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		tb.Fatalf("decode %d body %q: %v", r.StatusCode, r.Body, err)
	}
}

// Page fails the test unless the answer is a 200 list of the documented
// shape, exactly "items" (an array) and "nextCursor", and decodes it into v.
func (r *Response) Page(tb testing.TB, v any) {
	tb.Helper()
	r.Want(tb, http.StatusOK)
	var raw map[string]json.RawMessage
	r.Decode(tb, &raw)
	if len(raw) != 2 || raw["items"] == nil || raw["nextCursor"] == nil || raw["items"][0] != '[' {
		tb.Fatalf("list body %s, want {\"items\":[…],\"nextCursor\":…}", r.Body)
	}
	r.Decode(tb, v)
}

// Pages follows a list's nextCursor from its first page, as a client
// does: get answers the page for a query (query, plus the cursor of the
// page before), each page must have the list shape (Page), and Pages
// returns every page's items in order. It fails the test when the list
// goes on for more than 100 pages: the cursor does not advance.
func Pages[T any](tb testing.TB, query map[string]string, get func(query map[string]string) *Response) [][]T {
	tb.Helper()
	q := map[string]string{}
	maps.Copy(q, query)
	var pages [][]T
	for range 100 {
		var p apigw.Page[T]
		get(maps.Clone(q)).Page(tb, &p)
		pages = append(pages, p.Items)
		if p.NextCursor == nil {
			return pages
		}
		q["cursor"] = *p.NextCursor
	}
	tb.Fatalf("more than 100 pages: the cursor does not advance")
	return nil
}

// User decodes the body as a user.
func (r *Response) User(tb testing.TB) *licadmin.User {
	tb.Helper()
	r.Want(tb, http.StatusOK, http.StatusCreated)
	var u licadmin.User
	r.Decode(tb, &u)
	return &u
}

// Want fails the test unless the status is one of statuses.
func (r *Response) Want(tb testing.TB, statuses ...int) {
	tb.Helper()
	for _, s := range statuses {
		if r.StatusCode == s {
			return
		}
	}
	tb.Fatalf("status %d, want %v; body %s", r.StatusCode, statuses, r.Body)
}

// WantProblem fails the test unless the answer is a problem+json body with
// status and code.
func (r *Response) WantProblem(tb testing.TB, status int, code string) apigw.Problem {
	tb.Helper()
	if r.StatusCode != status {
		tb.Fatalf("status %d, want %d (%s); body %s", r.StatusCode, status, code, r.Body)
	}
	if ct := r.Headers["Content-Type"]; ct != apigw.ProblemContentType {
		tb.Fatalf("Content-Type %q, want %s", ct, apigw.ProblemContentType)
	}
	var p apigw.Problem
	r.Decode(tb, &p)
	if p.Code != code || p.Status != status || p.Title == "" || p.Type == "" || p.Detail == "" {
		tb.Fatalf("problem %+v, want status %d code %s with type, title and detail", p, status, code)
	}
	return p
}

// Invariants checks rules 1–3 and 5 of docs/api.md over the whole table: for every
// account and tier 0 <= assigned <= purchased, available = purchased -
// assigned, assigned equals the number of users holding that tier; every
// user has the email claim that points back at it with its role, and no
// claim points elsewhere; every account's adminCount is its number of
// admins, and at least one; a domain's global claim and its holder's
// approved entry exist together (an approved entry without its claim, or a
// claim without its holder's approved entry, would let users of the
// domain be added by the wrong account, or refused to the right one).
func (e *Env) Invariants(tb testing.TB) {
	tb.Helper()
	items := e.Scan(tb)
	type counts struct{ purchased, assigned, available, holders int64 }
	pools := map[string]map[string]*counts{}
	pool := func(acct, tier string) *counts {
		if pools[acct] == nil {
			pools[acct] = map[string]*counts{}
		}
		if pools[acct][tier] == nil {
			pools[acct][tier] = &counts{}
		}
		return pools[acct][tier]
	}
	claims := map[string]string{} // email -> userId
	users := map[string]string{}  // userId -> email
	claimRoles := map[string]string{}
	roles := map[string]string{}         // userId -> role
	adminCounts := map[string]int64{}    // accountId -> adminCount
	admins := map[string]int64{}         // accountId -> users with role admin
	domainClaims := map[string]string{}  // domain -> accountId of its approved claim
	approvedDomains := map[string]bool{} // accountId + " " + domain of an approved entry
	for _, it := range items {
		pk, sk := s(it, "pk"), s(it, "sk")
		switch {
		case sk == "DOMAIN" && strings.HasPrefix(pk, "DOMAIN#"):
			if s(it, "status") == string(licadmin.DomainApproved) {
				domainClaims[strings.TrimPrefix(pk, "DOMAIN#")] = s(it, "accountId")
			}
		case strings.HasPrefix(pk, "ACCT#") && strings.HasPrefix(sk, "DOMAIN#"):
			if s(it, "status") == string(licadmin.DomainApproved) {
				approvedDomains[strings.TrimPrefix(pk, "ACCT#")+" "+strings.TrimPrefix(sk, "DOMAIN#")] = true
			}
		case sk == "POOL":
			acct := strings.TrimPrefix(pk, "ACCT#")
			for _, t := range licadmin.Tiers {
				c := pool(acct, string(t))
				c.purchased, c.assigned, c.available = n(it, "purchased_"+string(t)), n(it, "assigned_"+string(t)), n(it, "available_"+string(t))
			}
		case sk == "ACCOUNT":
			adminCounts[strings.TrimPrefix(pk, "ACCT#")] = n(it, "adminCount")
		case sk == "USER":
			users[s(it, "id")] = s(it, "email")
			roles[s(it, "id")] = s(it, "role")
			if s(it, "role") == string(licadmin.RoleAdmin) {
				admins[s(it, "accountId")]++
			}
			if t := s(it, "tier"); t != "" {
				pool(s(it, "accountId"), t).holders++
			}
		case sk == "EMAIL":
			claims[strings.TrimPrefix(pk, "EMAIL#")] = s(it, "userId")
			claimRoles[strings.TrimPrefix(pk, "EMAIL#")] = s(it, "role")
		}
	}
	for acct, tiers := range pools {
		for tier, c := range tiers {
			if c.assigned < 0 || c.assigned > c.purchased || c.available != c.purchased-c.assigned || c.assigned != c.holders {
				tb.Errorf("account %s tier %s: purchased %d assigned %d available %d, but %d users hold it",
					acct, tier, c.purchased, c.assigned, c.available, c.holders)
			}
		}
	}
	for id, email := range users {
		if claims[email] != id {
			tb.Errorf("user %s (%s): the email claim points at %q", id, email, claims[email])
		} else if claimRoles[email] != roles[id] {
			tb.Errorf("user %s (%s) has role %q but its email claim says %q", id, email, roles[id], claimRoles[email])
		}
	}
	for acct, count := range adminCounts {
		if count != admins[acct] || count < 1 {
			tb.Errorf("account %s: adminCount %d, but %d users are admins (at least one must be)", acct, count, admins[acct])
		}
	}
	if len(claims) != len(users) {
		tb.Errorf("%d email claims for %d users", len(claims), len(users))
	}
	for domain, acct := range domainClaims {
		if !approvedDomains[acct+" "+domain] {
			tb.Errorf("domain %s: claimed for account %s, which has no approved entry for it", domain, acct)
		}
	}
	for entry := range approvedDomains {
		acct, domain, _ := strings.Cut(entry, " ")
		if domainClaims[domain] != acct {
			tb.Errorf("domain %s: approved for account %s, but its claim names %q", domain, acct, domainClaims[domain])
		}
	}
}

// SearchIndexInvariant checks that the search index entries are exactly
// those the users derive (store.SearchIndexItems): none missing, stale or
// left by a deleted user. The index follows the table's stream: deliver it
// first (DeliverUsageStream).
func (e *Env) SearchIndexInvariant(tb testing.TB) {
	tb.Helper()
	want, got := map[string]string{}, map[string]string{}
	for _, it := range e.Scan(tb) {
		switch pk := s(it, "pk"); {
		case s(it, "sk") == "USER" && strings.HasPrefix(pk, "USER#"):
			for _, x := range store.SearchIndexItems(it) {
				want[s(x, "pk")+" "+s(x, "sk")] = CanonItem(x)
			}
		case strings.HasPrefix(pk, "SEARCH#") && s(it, "sk") != "MARKER": // not a user's marker
			got[pk+" "+s(it, "sk")] = CanonItem(it)
		}
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			tb.Errorf("search index entry %q missing", k)
		} else if g != w {
			tb.Errorf("search index entry %q is\n%s\nthe user derives\n%s", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			tb.Errorf("search index entry %q is of no user", k)
		}
	}
}

// LogGeneration reads a user's log generation from its item.
func (e *Env) LogGeneration(tb testing.TB, userID string) int64 {
	tb.Helper()
	out, err := e.DB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(e.Table),
		Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#" + userID}, "sk": &types.AttributeValueMemberS{Value: "USER"}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil || out.Item == nil {
		tb.Fatalf("get user %s: %v", userID, err)
	}
	return n(out.Item, "logGen")
}

// Scan returns every item of the table.
func (e *Env) Scan(tb testing.TB) []map[string]types.AttributeValue {
	tb.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(e.DB, &dynamodb.ScanInput{TableName: aws.String(e.Table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			tb.Fatalf("scan: %v", err)
		}
		items = append(items, out.Items...)
	}
	return items
}

func s(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func n(it map[string]types.AttributeValue, name string) int64 {
	var x int64
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		fmt.Sscan(v.Value, &x)
	}
	return x
}

// AuditLog returns the audit records of accountID, newest first (at most
// 1,000: more than any test writes).
func (e *Env) AuditLog(tb testing.TB, accountID string) []store.Audit {
	tb.Helper()
	recs, err := e.App.Store.AuditLog(context.Background(), accountID, 1000)
	if err != nil {
		tb.Fatalf("audit log of %s: %v", accountID, err)
	}
	return recs
}

// CanonItem writes an item with its attributes sorted by name and typed
// values (sets sorted), so that two snapshots of the table compare as
// strings.
func CanonItem(it map[string]types.AttributeValue) string {
	keys := slices.Sorted(maps.Keys(it))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s;", k, canonAV(it[k]))
	}
	return b.String()
}

func canonAV(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return "S:" + v.Value
	case *types.AttributeValueMemberN:
		return "N:" + v.Value
	case *types.AttributeValueMemberB:
		return "B:" + base64.StdEncoding.EncodeToString(v.Value)
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint("BOOL:", v.Value)
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberM:
		return "M{" + CanonItem(v.Value) + "}"
	case *types.AttributeValueMemberL:
		var parts []string
		for _, e := range v.Value {
			parts = append(parts, canonAV(e))
		}
		return "L[" + strings.Join(parts, ",") + "]"
	case *types.AttributeValueMemberSS:
		s := append([]string(nil), v.Value...)
		sort.Strings(s)
		return "SS" + fmt.Sprint(s)
	case *types.AttributeValueMemberNS:
		s := append([]string(nil), v.Value...)
		sort.Strings(s)
		return "NS" + fmt.Sprint(s)
	}
	return fmt.Sprintf("%T", v)
}

// Concurrently runs fn(0) ... fn(n-1) in n goroutines released at the same
// moment, to race them, and returns once all have returned.
func Concurrently(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// Clock is a clock that tests move by hand, safe for the handlers and
// workers that read it concurrently: give its Now to a service's Now
// field.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
