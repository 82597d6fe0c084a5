package template_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/infra/streamlocal"
	"licenseadmin/infra/template"
)

// TestRealTemplateStream ensures the table has the stream that the outbox
// relies on, with both images (low-pool alerts compare the pool before and
// after), so that DynamoDB Local's table has it too; and that only the
// functions that deliver the outbox (the stream's and the sweeper) may
// send email.
func TestRealTemplateStream(t *testing.T) {
	tpl := realTemplate(t)
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
		if want := fn.LogicalID == "ProcessTableStreamFunction" || fn.LogicalID == "SweepOutboxFunction"; sends != want {
			t.Errorf("%s: may use SES = %v, want %v: %s", fn.LogicalID, sends, want, b)
		}
	}
}

// TestStreamFilterAdmitsHandledRecords holds the stream function's
// FilterCriteria to the records its handlers need: Lambda drops every
// record no pattern matches before the function sees it, so a handler
// added to shared/stream's dispatcher without a pattern would never run,
// in AWS nor locally (the local stack applies the same filter). Each case
// is a record as the filter sees it.
func TestStreamFilterAdmitsHandledRecords(t *testing.T) {
	_, src := streamSource(t, "ProcessTableStreamFunction")
	filter, err := streamlocal.ParseFilter(src.Filters)
	if err != nil || filter == nil {
		t.Fatalf("ProcessTableStreamFunction's filter patterns %v: %v", src.Filters, err)
	}
	s := func(v string) map[string]any { return map[string]any{"S": v} }
	record := func(event, pk, sk string, newImage map[string]any) map[string]any {
		ddb := map[string]any{"Keys": map[string]any{"pk": s(pk), "sk": s(sk)}}
		if newImage != nil {
			ddb["NewImage"] = newImage
		}
		return map[string]any{"eventName": event, "dynamodb": ddb}
	}
	for _, tc := range []struct {
		name   string
		record map[string]any
		want   bool
	}{
		{"outbox insert (email delivery)", record("INSERT", "OUTBOX#01J", "OUTBOX", nil), true},
		{"pool modify (low-pool alerts)", record("MODIFY", "ACCT#a1", "POOL", nil), true},
		{"pool insert (pool levels of a new pool)", record("INSERT", "ACCT#a1", "POOL", nil), true},
		{"user modify (log purge, license confirmations)", record("MODIFY", "USER#u1", "USER", nil), true},
		{"user remove (log purge)", record("REMOVE", "USER#u1", "USER", nil), true},
		{"purge marker insert", record("INSERT", "PURGE#u1", "0-1", nil), true},
		{"import chunk audit insert (license confirmations)", record("INSERT", "ACCT#a1", "AUDIT#2026-11-23T10:00:00Z#01J",
			map[string]any{"action": s("users.import")}), true},
		{"other audit insert", record("INSERT", "ACCT#a1", "AUDIT#2026-11-23T10:00:00Z#01J",
			map[string]any{"action": s("license.assign")}), false},
		{"user insert", record("INSERT", "USER#u1", "USER", nil), false},
		{"log entry insert", record("INSERT", "LOG#u1#0", "2026-11-23T10:00:00Z#e1", nil), false},
		{"outbox modify (delivery state)", record("MODIFY", "OUTBOX#01J", "OUTBOX", nil), false},
		{"usage event claim insert (RecordUsageFunction's)", record("INSERT", "USAGE#u1", "EVENT#e1", nil), false},
		{"monthly counters modify", record("MODIFY", "USER#u1", "STATS#2026-11", nil), false},
	} {
		got := filter.MatchJSON(tc.record)
		if got != tc.want {
			t.Errorf("%s: admitted = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRecordUsageFilter holds the recording function's FilterCriteria to
// what it records: the INSERT of a usage log entry marked to count (an
// entry rewritten by a redelivered event is a MODIFY and must not count;
// one an earlier release put from a claim it counted has no mark; the
// counters' own updates must not come back to it), the INSERT of a usage
// event claim (whose entry it puts), and every change of a user item, from
// which it keeps the search index (its own writes, the entries and the
// marker, must not come back to it).
func TestRecordUsageFilter(t *testing.T) {
	_, src := streamSource(t, "RecordUsageFunction")
	filter, err := streamlocal.ParseFilter(src.Filters)
	if err != nil || filter == nil {
		t.Fatalf("RecordUsageFunction's filter patterns %v: %v", src.Filters, err)
	}
	record := func(event, pk, sk string) map[string]any {
		return map[string]any{"eventName": event, "dynamodb": map[string]any{"Keys": map[string]any{
			"pk": map[string]any{"S": pk}, "sk": map[string]any{"S": sk}}}}
	}
	entry := func(event string, counts any) map[string]any {
		r := record(event, "LOG#u1#0", "2026-11-23T10:00:00Z#e1")
		img := map[string]any{"type": map[string]any{"S": "sent"}}
		if counts != nil {
			img["counts"] = map[string]any{"BOOL": counts}
		}
		r["dynamodb"].(map[string]any)["NewImage"] = img
		return r
	}
	for _, tc := range []struct {
		name   string
		record map[string]any
		want   bool
	}{
		{"claim insert", record("INSERT", "USAGE#u1", "EVENT#e1"), true},
		{"claim rewritten (redelivered event)", record("MODIFY", "USAGE#u1", "EVENT#e1"), false},
		{"claim expired", record("REMOVE", "USAGE#u1", "EVENT#e1"), false},
		{"log entry insert", entry("INSERT", true), true},
		{"log entry rewritten (redelivered event)", entry("MODIFY", true), false},
		{"log entry expired or purged", record("REMOVE", "LOG#u1#0", "2026-11-23T10:00:00Z#e1"), false},
		{"log entry put from a counted claim (earlier release)", entry("INSERT", nil), false},
		{"log entry marked not to count", entry("INSERT", false), false},
		{"counters insert", record("INSERT", "USER#u1", "STATS#2026-11"), false},
		{"counters modify", record("MODIFY", "USER#u1", "STATS#2026-11"), false},
		{"user insert (search index)", record("INSERT", "USER#u1", "USER"), true},
		{"user modify (search index)", record("MODIFY", "USER#u1", "USER"), true},
		{"user remove (search index)", record("REMOVE", "USER#u1", "USER"), true},
		{"search index marker", record("MODIFY", "SEARCH#u1", "MARKER"), false},
		{"search index entry", record("INSERT", "SEARCH#a1#j", "jane\x01f\x01u1"), false},
		{"email claim", record("INSERT", "EMAIL#jane@acme.test", "EMAIL"), false},
	} {
		if got := filter.MatchJSON(tc.record); got != tc.want {
			t.Errorf("%s: admitted = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRealTemplateStreamSource reads the stream function's event source
// mapping as the local stack applies it.
func TestRealTemplateStreamSource(t *testing.T) {
	tpl, src := streamSource(t, "ProcessTableStreamFunction")
	if src.Table != template.TableLogicalID || src.BatchSize != 10 || src.MaximumRetryAttempts != 10 || !src.BisectBatchOnFunctionError ||
		!src.ReportBatchItemFailures || src.OnFailure != "StreamFailureQueue" || len(src.Filters) != 5 || src.StartingPosition != "TRIM_HORIZON" {
		t.Fatalf("stream source %+v", src)
	}
	fn, _ := tpl.Function("ProcessTableStreamFunction")
	api, _ := tpl.Function("GetUserFunction")
	if fn.Timeout != 60*time.Second || api.Timeout != 10*time.Second {
		t.Fatalf("timeouts %s and %s, want the function's 60 s and the Globals' 10 s", fn.Timeout, api.Timeout)
	}
	if q := tpl.Queues(); !slices.Contains(q, "StreamFailureQueue") || !slices.Contains(q, "UsageDeadLetterQueue") {
		t.Fatalf("queues %v", q)
	}
}

// streamSource returns the project's template and the DynamoDB event of
// function fn.
func streamSource(t *testing.T, fn string) (*template.Template, template.StreamSource) {
	t.Helper()
	tpl := realTemplate(t)
	sources, err := tpl.StreamSources()
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range sources {
		if src.Function == fn {
			return tpl, src
		}
	}
	t.Fatalf("no stream source for %s in %+v", fn, sources)
	return nil, template.StreamSource{}
}
