package template_test

import (
	"encoding/json"
	"fmt"
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

// TestStreamFilterAdmitsHandledRecords holds the stream function's
// FilterCriteria to the records its handlers need: Lambda drops every
// record no pattern matches before the function sees it, so a handler
// added to shared/stream's dispatcher without a pattern would never run in
// AWS (locally every record is delivered). Each case is a record as the
// filter sees it; the matcher knows the subset of the pattern syntax the
// template uses (exact strings and prefixes) and fails on anything else.
func TestStreamFilterAdmitsHandledRecords(t *testing.T) {
	patterns := filterPatterns(t, "ProcessTableStreamFunction", "TableStream")
	for _, tc := range []struct {
		name   string
		record map[string]any
		want   bool
	}{
		{"outbox insert (email delivery)", record("INSERT", "OUTBOX#01J", "OUTBOX", nil), true},
		{"pool modify (low-pool alerts)", record("MODIFY", "ACCT#a1", "POOL", nil), true},
		{"pool insert (pool levels of a new pool)", record("INSERT", "ACCT#a1", "POOL", nil), true},
		{"user modify (log purge)", record("MODIFY", "USER#u1", "USER", nil), true},
		{"user remove (log purge)", record("REMOVE", "USER#u1", "USER", nil), true},
		{"purge marker insert", record("INSERT", "PURGE#u1", "0-1", nil), true},
		{"import chunk audit insert (license confirmations)", record("INSERT", "ACCT#a1", "AUDIT#2026-11-23T10:00:00Z#01J",
			map[string]any{"action": attrS("users.import")}), true},
		{"other audit insert", record("INSERT", "ACCT#a1", "AUDIT#2026-11-23T10:00:00Z#01J",
			map[string]any{"action": attrS("license.assign")}), false},
		{"user insert", record("INSERT", "USER#u1", "USER", nil), false},
		{"log entry insert", record("INSERT", "LOG#u1#0", "2026-11-23T10:00:00Z#e1", nil), false},
		{"outbox modify (delivery state)", record("MODIFY", "OUTBOX#01J", "OUTBOX", nil), false},
		{"usage event claim insert (counted by RecordUsageFunction)", record("INSERT", "USAGE#u1", "EVENT#e1", nil), false},
		{"monthly counters modify", record("MODIFY", "USER#u1", "STATS#2026-11", nil), false},
	} {
		if got := admitted(t, patterns, tc.record); got != tc.want {
			t.Errorf("%s: admitted = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRecordUsageFilter holds the recording function's FilterCriteria to
// what it records: the INSERT of a usage event claim, nothing else (a
// claim rewritten by a redelivered event is a MODIFY and must not count;
// the counters' own updates must not come back to it).
func TestRecordUsageFilter(t *testing.T) {
	patterns := filterPatterns(t, "RecordUsageFunction", "Claims")
	for _, tc := range []struct {
		name   string
		record map[string]any
		want   bool
	}{
		{"claim insert", record("INSERT", "USAGE#u1", "EVENT#e1", nil), true},
		{"claim rewritten (redelivered event)", record("MODIFY", "USAGE#u1", "EVENT#e1", nil), false},
		{"claim expired", record("REMOVE", "USAGE#u1", "EVENT#e1", nil), false},
		{"log entry insert", record("INSERT", "LOG#u1#0", "2026-11-23T10:00:00Z#e1", nil), false},
		{"counters insert", record("INSERT", "USER#u1", "STATS#2026-11", nil), false},
		{"counters modify", record("MODIFY", "USER#u1", "STATS#2026-11", nil), false},
		{"user insert", record("INSERT", "USER#u1", "USER", nil), false},
	} {
		if got := admitted(t, patterns, tc.record); got != tc.want {
			t.Errorf("%s: admitted = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// filterPatterns returns the filter patterns of a function's stream event.
func filterPatterns(t *testing.T, function, event string) []map[string]any {
	t.Helper()
	d := realDocument(t)
	var patterns []map[string]any
	for _, fn := range d.OfType(typeFunction) {
		if fn.LogicalID != function {
			continue
		}
		for _, f := range template.List(template.Path(fn.Properties, "Events."+event+".Properties.FilterCriteria.Filters")) {
			src, _ := template.Path(f, "Pattern").(string)
			var p map[string]any
			if err := json.Unmarshal([]byte(src), &p); err != nil {
				t.Fatalf("pattern %q: %v", src, err)
			}
			patterns = append(patterns, p)
		}
	}
	if len(patterns) == 0 {
		t.Fatalf("%s has no filter patterns on its event %s", function, event)
	}
	return patterns
}

// record is a stream record as a filter sees it.
func record(event, pk, sk string, newImage map[string]any) map[string]any {
	ddb := map[string]any{"Keys": map[string]any{"pk": attrS(pk), "sk": attrS(sk)}}
	if newImage != nil {
		ddb["NewImage"] = newImage
	}
	return map[string]any{"eventName": event, "dynamodb": ddb}
}

func attrS(v string) map[string]any { return map[string]any{"S": v} }

// admitted reports whether any of patterns matches record.
func admitted(t *testing.T, patterns []map[string]any, record map[string]any) bool {
	t.Helper()
	got := false
	for _, p := range patterns {
		ok, err := filterMatches(p, record)
		if err != nil {
			t.Fatalf("pattern %v: %v", p, err)
		}
		got = got || ok
	}
	return got
}

// filterMatches reports whether event matches an event filter pattern:
// every field of the pattern must be in the event, a list of values
// matching a string field by equality or {"prefix": ...}.
func filterMatches(pattern, event any) (bool, error) {
	switch p := pattern.(type) {
	case map[string]any:
		e, _ := event.(map[string]any)
		for k, pv := range p {
			ok, err := filterMatches(pv, e[k])
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case []any:
		v, isString := event.(string)
		for _, alt := range p {
			switch a := alt.(type) {
			case string:
				if isString && v == a {
					return true, nil
				}
			case map[string]any:
				pre, ok := a["prefix"].(string)
				if !ok || len(a) != 1 {
					return false, fmt.Errorf("filter operator %v is not known to this test", a)
				}
				if isString && strings.HasPrefix(v, pre) {
					return true, nil
				}
			default:
				return false, fmt.Errorf("filter value %v is not known to this test", a)
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("pattern %v is neither an object nor a list", pattern)
}
