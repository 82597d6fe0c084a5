package metrics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/metrics"
)

// emf is the part of an EMF line that CloudWatch reads.
type emf struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
}

// lines decodes every line w received and checks each is valid EMF: one
// directive in the LicenseAdmin namespace, every dimension and metric
// named in it present at the top level (metrics as numbers), at most 9
// dimensions per set and 100 metrics.
func lines(t *testing.T, w *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m emf
		var flat map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		_ = json.Unmarshal([]byte(l), &flat)
		if len(m.AWS.CloudWatchMetrics) != 1 || m.AWS.Timestamp == 0 {
			t.Fatalf("line %q: want one directive and a timestamp", l)
		}
		d := m.AWS.CloudWatchMetrics[0]
		if d.Namespace != metrics.Namespace || len(d.Metrics) == 0 || len(d.Metrics) > 100 {
			t.Errorf("line %q: namespace %q, %d metrics", l, d.Namespace, len(d.Metrics))
		}
		for _, set := range d.Dimensions {
			if len(set) > 9 {
				t.Errorf("line %q: dimension set %v has more than 9 dimensions", l, set)
			}
			for _, name := range set {
				if _, ok := flat[name].(string); !ok {
					t.Errorf("line %q: dimension %s is not a string field", l, name)
				}
			}
		}
		for _, mt := range d.Metrics {
			if _, ok := flat[mt.Name].(float64); !ok {
				t.Errorf("line %q: metric %s is not a number field", l, mt.Name)
			}
			if mt.Unit == "" {
				t.Errorf("line %q: metric %s has no unit", l, mt.Name)
			}
		}
		out = append(out, flat)
	}
	return out
}

// TestEmitters ensures each of the project's metrics is written as one
// valid EMF line with its values, dimensions and properties.
func TestEmitters(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		emit func(e *metrics.Emitter)
		want map[string]any
	}{
		{"request ok", func(e *metrics.Emitter) { e.Request("AssignLicense", 200, 12500*time.Microsecond) },
			map[string]any{"Operation": "AssignLicense", "Requests": 1.0, "ServerErrors": 0.0, "ClientErrors": 0.0, "Latency": 12.5, "status": 200.0}},
		{"request 5xx", func(e *metrics.Emitter) { e.Request("GetUser", 503, time.Millisecond) },
			map[string]any{"ServerErrors": 1.0, "ClientErrors": 0.0}},
		{"request 4xx", func(e *metrics.Emitter) { e.Request("GetUser", 404, time.Millisecond) },
			map[string]any{"ServerErrors": 0.0, "ClientErrors": 1.0}},
		{"conflict retried", func(e *metrics.Emitter) { e.TransactionConflict(true) },
			map[string]any{"TransactionConflicts": 1.0, "TransactionRetries": 1.0, "TransactionsAbandoned": 0.0}},
		{"conflict abandoned", func(e *metrics.Emitter) { e.TransactionConflict(false) },
			map[string]any{"TransactionRetries": 0.0, "TransactionsAbandoned": 1.0}},
		{"pool", func(e *metrics.Emitter) { e.LicensePool("acct-1", "pro", 3, 7) },
			map[string]any{"Tier": "pro", "accountId": "acct-1", "LicensesAssigned": 3.0, "LicensesAvailable": 7.0}},
		{"import", func(e *metrics.Emitter) { e.Import("acct-1", false, 1000, 10, 2*time.Second) },
			map[string]any{"DryRun": "false", "ImportRows": 1000.0, "ImportRowsFailed": 10.0, "ImportRowsPerSecond": 500.0}},
		{"email sent", func(e *metrics.Emitter) { e.Email("activation", nil, false) },
			map[string]any{"Kind": "activation", "EmailsSent": 1.0, "EmailsFailed": 0.0, "EmailsRejected": 0.0}},
		{"email throttled", func(e *metrics.Emitter) { e.Email("low_pool", errors.New("throttled"), false) },
			map[string]any{"EmailsSent": 0.0, "EmailsFailed": 1.0, "EmailsRejected": 0.0}},
		{"email rejected", func(e *metrics.Emitter) { e.Email("low_pool", errors.New("unverified sender"), true) },
			map[string]any{"EmailsSent": 0.0, "EmailsFailed": 1.0, "EmailsRejected": 1.0}},
		{"email deferred", func(e *metrics.Emitter) { e.EmailDeferred("license_assigned") },
			map[string]any{"Kind": "license_assigned", "EmailsDeferred": 1.0}},
		{"email given up", func(e *metrics.Emitter) { e.EmailGivenUp("activation") },
			map[string]any{"Kind": "activation", "EmailsGivenUp": 1.0}},
		{"usage", func(e *metrics.Emitter) { e.Usage(8, 1, 1) },
			map[string]any{"UsageEvents": 8.0, "UsageEventsDropped": 1.0, "UsageEventsFailed": 1.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			e := &metrics.Emitter{W: &w, Now: func() time.Time { return at }}
			tt.emit(e)
			got := lines(t, &w)
			if len(got) != 1 {
				t.Fatalf("%d lines, want 1: %s", len(got), w.String())
			}
			for k, v := range tt.want {
				if got[0][k] != v {
					t.Errorf("%s = %v, want %v (line %s)", k, got[0][k], v, w.String())
				}
			}
			if ts := got[0]["_aws"].(map[string]any)["Timestamp"].(float64); int64(ts) != at.UnixMilli() {
				t.Errorf("Timestamp %v, want %d", ts, at.UnixMilli())
			}
		})
	}
}

// TestNilEmitter ensures an unwired emitter records nothing and does not
// panic.
func TestNilEmitter(t *testing.T) {
	var e *metrics.Emitter
	e.Request("X", 200, time.Millisecond)
	e.TransactionConflict(true)
	e.LicensePool("a", "eco", 1, 1)
	e.Import("a", true, 1, 0, time.Second)
	e.Email("activation", nil, false)
	e.Usage(1, 0, 0)
	(&metrics.Emitter{}).Request("X", 200, 0) // no writer
}
