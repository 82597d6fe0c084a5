package bench

import (
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	licenseadmin "licenseadmin"
	"licenseadmin/infra/template"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// TestPercentileAndSpread ensures the latency percentiles use the nearest
// rank and that min/median/max ignore runs that measured nothing.
func TestPercentileAndSpread(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]float64{50: 50, 95: 95, 99: 99, 100: 100} {
		if got := percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	s := spreadOf([]float64{3, math.NaN(), 1, 2})
	if s != (spread{N: 3, Min: 1, Median: 2, Max: 3}) {
		t.Errorf("spread %+v", s)
	}
	if s := spreadOf([]float64{1, 4}); s.Median != 2.5 {
		t.Errorf("median of two = %v, want 2.5", s.Median)
	}
}

// TestFigureRatiosAndVerdicts ensures a figure is compared with its floor
// run by run, and judged on the medians.
func TestFigureRatiosAndVerdicts(t *testing.T) {
	fs := newFigureSet(3)
	fs.define(figureDef{ID: "floor", Unit: "ms"})
	fs.define(figureDef{ID: "api", Unit: "ms", Floor: "floor", Target: "ratio <= 1.3", Check: ratioAtMost(1.3)})
	fs.define(figureDef{ID: "never", Unit: "ms", Target: "<= 1", Check: atMost(1)})
	for run, v := range [][2]float64{{10, 12}, {20, 30}, {10, 11}} {
		fs.record(run, "floor", v[0])
		fs.record(run, "api", v[1])
	}
	rs := fs.ratios(fs.byID["api"])
	if rs[0] != 1.2 || rs[1] != 1.5 || math.Abs(rs[2]-1.1) > 1e-9 {
		t.Errorf("ratios %v, want [1.2 1.5 1.1]", rs)
	}
	if v := fs.verdict(fs.byID["api"]); v != "ok" {
		t.Errorf("verdict %q, want ok (median ratio 1.2)", v)
	}
	if v := fs.verdict(fs.byID["never"]); v != "not measured" {
		t.Errorf("verdict %q, want not measured", v)
	}
	var out strings.Builder
	fs.printTable(&out, true)
	if !strings.Contains(out.String(), "1.20 [1.10–1.50]") {
		t.Errorf("table lacks the ratio's median [min–max]:\n%s", out.String())
	}
	if j := fs.jsonFigures(); len(j) != 3 || j[1].Ratio == nil || j[2].Values[0] != nil {
		t.Errorf("JSON figures %+v", j)
	}
}

// TestTemplateVariables ensures the start-up environment resolves the
// template's variables as a deployment would.
func TestTemplateVariables(t *testing.T) {
	tpl := []byte(`
Parameters:
  LogLevel: {Type: String, Default: INFO}
  PublicBaseUrl: {Type: String}
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        LOG_LEVEL: !Ref LogLevel
        EMPTY: ""
Resources:
  Table: {Type: AWS::DynamoDB::Table}
  Queue: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          BASE: !Ref PublicBaseUrl
          QUEUE: !Ref Queue
          BUCKET: !Sub "${AWS::StackName}-files-${AWS::AccountId}"
          ARN: !GetAtt Table.Arn
`)
	samconfig := "[default.deploy.parameters]\nparameter_overrides = \"PublicBaseUrl=https://api.example.com LogLevel=WARN\"\n"
	vars, err := templateVariables(tpl, samconfig)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TABLE_NAME": "license-admin-Table",
		"LOG_LEVEL":  "WARN",
		"EMPTY":      "",
		"BASE":       "https://api.example.com",
		"QUEUE":      "https://sqs.us-east-1.amazonaws.com/123456789012/license-admin-Queue",
		"BUCKET":     "license-admin-files-123456789012",
		"ARN":        "arn:aws:bench:us-east-1:123456789012:license-admin-Table",
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
}

// TestLoopbackOnly ensures the benchmark refuses to talk to anything but
// this machine.
func TestLoopbackOnly(t *testing.T) {
	if _, err := loopbackDialer(context.Background(), "tcp", "192.0.2.1:80"); err == nil {
		t.Error("dialed a non-loopback address")
	}
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8000": true, "http://[::1]:8000": true,
		"http://dynamodb.us-east-1.amazonaws.com": false, "https://10.0.0.1": false,
	} {
		if err := checkLoopbackURL(u); (err == nil) != ok {
			t.Errorf("checkLoopbackURL(%s) = %v", u, err)
		}
	}
}

// TestDriveIsBounded ensures a load stops at its count or its time limit,
// whichever comes first, and counts failures apart.
func TestDriveIsBounded(t *testing.T) {
	var calls atomic.Int64
	res := drive(context.Background(), 4, 10, time.Minute, func(context.Context, int, int) error {
		if calls.Add(1)%5 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	if calls.Load() != 10 || len(res.lat) != 8 || res.failed != 2 || res.firstErr == nil {
		t.Errorf("calls %d, ok %d, failed %d, err %v", calls.Load(), len(res.lat), res.failed, res.firstErr)
	}
	start := time.Now()
	res = drive(context.Background(), 2, 1_000_000, 50*time.Millisecond, func(ctx context.Context, _, _ int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	if time.Since(start) > 5*time.Second || res.failed != 0 || len(res.lat) == 0 {
		t.Errorf("time-bounded load: %d ok, %d failed in %s", len(res.lat), res.failed, time.Since(start))
	}
}

func TestRowsLabel(t *testing.T) {
	for n, want := range map[int]string{100_000: "100k", 1_000_000: "1m", 2_500: "2500"} {
		if got := rowsLabel(n); got != want {
			t.Errorf("rowsLabel(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestCapacityUnits holds the computed capacity units to DynamoDB's
// published rules: writes per 1 KB rounded up, reads per 4 KB, half for
// eventually consistent reads, twice inside transactions, a missing key
// read for one unit.
func TestCapacityUnits(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	item := func(bytes int) map[string]types.AttributeValue {
		// "pk"+"sk"+"d" names (5 bytes) and values: bytes in all.
		return map[string]types.AttributeValue{"pk": s("p"), "sk": s("s"), "d": s(strings.Repeat("x", bytes-7))}
	}
	if got := store.ItemSize(item(1500)); got != 1500 {
		t.Fatalf("itemSize = %d, want 1500", got)
	}
	if got := store.ItemSize(map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "12345"}, "l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("ab")}}}); got != 1+4+1+3+1+2 {
		t.Fatalf("itemSize of a number and a list = %d, want %d", got, 1+4+1+3+1+2)
	}
	for _, tc := range []struct {
		name     string
		in, out  any
		wcu, rcu float64
	}{
		{"put of 1500 bytes", &dynamodb.PutItemInput{Item: item(1500)}, &dynamodb.PutItemOutput{}, 2, 0},
		{"put of 100 bytes", &dynamodb.PutItemInput{Item: item(100)}, &dynamodb.PutItemOutput{}, 1, 0},
		{"transaction of two puts", &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{Put: &types.Put{Item: item(100)}}, {Put: &types.Put{Item: item(2100)}}}},
			&dynamodb.TransactWriteItemsOutput{}, 2 + 6, 0},
		{"batch write, one left unprocessed", &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"t": {
			{PutRequest: &types.PutRequest{Item: item(100)}}, {PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{"pk": s("q"), "sk": s("s")}}}}}},
			&dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"t": {{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{"pk": s("q"), "sk": s("s")}}}}}}, 1, 0},
		{"consistent get of 5000 bytes", &dynamodb.GetItemInput{ConsistentRead: aws.Bool(true)}, &dynamodb.GetItemOutput{Item: item(5000)}, 0, 2},
		{"eventual get of a missing item", &dynamodb.GetItemInput{}, &dynamodb.GetItemOutput{}, 0, 0.5},
		{"eventual batch get, one of three missing", &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{"t": {Keys: make([]map[string]types.AttributeValue, 3)}}},
			&dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{"t": {item(100), item(4097)}}}, 0, (1 + 2 + 1) * 0.5},
		{"index query of 9000 bytes", &dynamodb.QueryInput{IndexName: aws.String("gsi1"), ConsistentRead: aws.Bool(false)},
			&dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{item(4500), item(4500)}}, 0, 3 * 0.5},
	} {
		c := requestCapacity(tc.in, tc.out)
		if c.wcu != tc.wcu || c.rcu != tc.rcu || len(c.sized) != 0 {
			t.Errorf("%s: %v WCU %v RCU (%d sized), want %v and %v", tc.name, c.wcu, c.rcu, len(c.sized), tc.wcu, tc.rcu)
		}
	}
	c := requestCapacity(&dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{Update: &types.Update{Key: item(10)}}, {ConditionCheck: &types.ConditionCheck{Key: item(10)}}}}, &dynamodb.TransactWriteItemsOutput{})
	if len(c.sized) != 2 || c.sized[0].factor != 2 || c.sized[1].factor != 2 {
		t.Errorf("a transaction's update and condition check: %+v, want two items sized from the table at twice their units", c.sized)
	}
}

// TestIndexWriteUnits holds the index writes to DynamoDB's rules for
// global secondary indexes: an item entering, leaving or changing a
// projected attribute writes its entry once, a changed index key twice,
// and a write the index does not see costs it nothing; index writes are
// not doubled in a transaction.
func TestIndexWriteUnits(t *testing.T) {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	// indexed is an item of the given size in gsi1 (key attributes and
	// values: 2+1 + 2+1 + 6+1 + 6+1 + 4+3 = 27 bytes, plus "d").
	indexed := func(bytes int) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": s("p"), "sk": s("s"), "gsi1pk": s("g"), "gsi1sk": s("h"),
			"tier": s("eco"), "d": s(strings.Repeat("x", bytes-27-1))}
	}
	if got := store.ItemSize(indexed(1500)); got != 1500 {
		t.Fatalf("item size %d, want 1500", got)
	}
	plain := map[string]types.AttributeValue{"pk": s("q"), "sk": s("s"), "d": s("x")}
	keys := []string{"gsi1pk", "gsi1sk"}
	all := tableIndex{name: "gsi1", keys: keys, projection: types.ProjectionTypeAll}
	keysOnly := tableIndex{name: "gsi1", keys: keys, projection: types.ProjectionTypeKeysOnly}
	include := tableIndex{name: "gsi1", keys: keys, projection: types.ProjectionTypeInclude, include: []string{"tier"}}
	for _, tc := range []struct {
		name  string
		ix    tableIndex
		w     itemWrite
		after map[string]types.AttributeValue
		want  float64
	}{
		{"put of an indexed item of 1500 bytes", all, itemWrite{put: indexed(1500)}, indexed(1500), 2},
		{"put of an item without the index keys", all, itemWrite{put: plain}, plain, 0},
		{"update of an indexed item, all projected", all, itemWrite{named: []string{"tier"}}, indexed(700), 1},
		{"update of an item not in the index", all, itemWrite{named: []string{"tier"}}, plain, 0},
		{"update changing an index key", all, itemWrite{named: []string{"status", "gsi1sk"}}, indexed(1500), 4},
		{"update removing an index key", all, itemWrite{named: []string{"gsi1pk", "gsi1sk"}}, plain, 1},
		{"keys only: update of a non-key attribute", keysOnly, itemWrite{named: []string{"tier"}}, indexed(1500), 0},
		{"keys only: update changing an index key", keysOnly, itemWrite{named: []string{"gsi1sk"}}, indexed(1500), 2},
		{"include: update of an attribute not included", include, itemWrite{named: []string{"status"}}, indexed(1500), 0},
		{"include: update of an included attribute", include, itemWrite{named: []string{"tier"}}, indexed(1500), 1},
		{"delete", all, itemWrite{delete: true}, nil, 0},
	} {
		if got := tc.ix.writeUnits(tc.w, tc.after); got != tc.want {
			t.Errorf("%s: %v index write units, want %v", tc.name, got, tc.want)
		}
	}

	names := updateNames(aws.String("SET #a = :v, b = if_not_exists(b, :z) REMOVE #0 ADD d :1"), map[string]string{"#a": "tier", "#0": "claim"})
	if want := []string{"tier", "b", "b", "claim", "d"}; !slices.Equal(names, want) {
		t.Errorf("updateNames = %q, want %q", names, want)
	}

	// A transaction of an indexed put and an update of an indexed user:
	// the table's items twice, their index entries once.
	user := indexed(700)
	sizes := &itemSizes{indexes: []tableIndex{all}, items: map[string]map[string]types.AttributeValue{keyID(user): user}}
	c := requestCapacity(&dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{Item: indexed(1500)}},
		{Update: &types.Update{Key: map[string]types.AttributeValue{"pk": s("p"), "sk": s("s")}, UpdateExpression: aws.String("SET #0 = :v0"), ExpressionAttributeNames: map[string]string{"#0": "tier"}}},
		{ConditionCheck: &types.ConditionCheck{Key: map[string]types.AttributeValue{"pk": s("p"), "sk": s("s")}}},
	}}, &dynamodb.TransactWriteItemsOutput{})
	wcu, _, err := sizes.units(context.Background(), nil, "t", c)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*2 + 2*1 + 2*1 + (2 + 1); wcu != float64(want) {
		t.Errorf("transaction: %v write units, want %v (table items twice, index entries once)", wcu, want)
	}
}

// TestStreamUnits holds what a license operation costs after its request:
// the stream function rewrites each changed user's search index entries
// (three, each carrying the user's view) with the user's marker in one
// transaction, and puts the confirmation of a license gained, with its
// entry in gsi1 (the outbox's due list).
func TestStreamUnits(t *testing.T) {
	u := &licadmin.User{ID: "01JBENCHUSER0000000000000", AccountID: "01JBENCHACCT0000000000000", Email: "jeanne.dupont@bench.example",
		FirstName: "Jeanne", LastName: "Dupont", Language: "fr", Role: licadmin.RoleUser, Status: licadmin.StatusActive, Version: 1,
		CreatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	// The markers are sized from the table: absent, each costs one unit.
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(cannedDynamoDB(t, map[string]string{"GetItem": "{}"})),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	b := &bench{stack: &benchStack{table: "t", raw: db, sizes: itemSizes{
		indexes: []tableIndex{{name: "gsi1", keys: []string{"gsi1pk", "gsi1sk"}, projection: types.ProjectionTypeAll}},
	}}}
	admin := &licadmin.Caller{AccountID: u.AccountID, UserID: "01JBENCHADMIN000000000000", Email: "admin@bench.example", Role: licadmin.RoleAdmin}
	got, err := b.streamUnits(context.Background(), admin, u)
	if err != nil {
		t.Fatal(err)
	}
	// Search: marker and three entries, twice in a transaction: 8 per
	// user changed. Confirmation: the put and its index entry: 2.
	want := map[string]float64{"assign": 8 + 2, "modify": 8, "remove": 8, "transfer": 2*8 + 2}
	if !maps.Equal(got, want) {
		t.Errorf("stream write units per operation %v, want %v", got, want)
	}
	created, err := b.searchUnits(context.Background(), nil, u)
	if err != nil || created != 8 {
		t.Errorf("a new user's search index: %v write units (%v), want 8", created, err)
	}
}

// TestTableIndexes reads the table's global secondary indexes from the
// template, as the benchmark counts their writes.
func TestTableIndexes(t *testing.T) {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	in, err := tpl.TableInput("t")
	if err != nil {
		t.Fatal(err)
	}
	got := tableIndexes(in)
	if len(got) != 1 || got[0].name != "gsi1" || !slices.Equal(got[0].keys, []string{"gsi1pk", "gsi1sk"}) || got[0].projection != types.ProjectionTypeAll {
		t.Errorf("indexes %+v, want gsi1 on gsi1pk, gsi1sk with all attributes", got)
	}
}
