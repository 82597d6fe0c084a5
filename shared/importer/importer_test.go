package importer_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"licenseadmin/shared/importer"
)

// TestParseKey ensures only keys of the form imports/{accountId}/{importId}.csv
// name an import, with ids made of letters and digits.
func TestParseKey(t *testing.T) {
	cases := []struct {
		key, acct, id string
		ok            bool
	}{
		{"imports/01JDQ3Z2Y4X6W8V0T2S4R6Q8PN/01JDQ6B4X8J3L0N5Q7S9U1W2YC.csv", "01JDQ3Z2Y4X6W8V0T2S4R6Q8PN", "01JDQ6B4X8J3L0N5Q7S9U1W2YC", true},
		{importer.ImportKey("A1", "B2"), "A1", "B2", true},
		{"imports/A1/B2.CSV", "", "", false},
		{"imports/A1/B2.csv.csv", "", "", false},
		{"imports/A1/sub/B2.csv", "", "", false},
		{"imports//B2.csv", "", "", false},
		{"imports/A1/.csv", "", "", false},
		{"imports/../A1/B2.csv", "", "", false},
		{"imports/A-1/B2.csv", "", "", false},
		{"reports/A1/B2.csv", "", "", false},
		{"A1/B2.csv", "", "", false},
	}
	for _, c := range cases {
		acct, id, ok := importer.ParseKey(c.key)
		if acct != c.acct || id != c.id || ok != c.ok {
			t.Errorf("ParseKey(%q) = %q, %q, %v; want %q, %q, %v", c.key, acct, id, ok, c.acct, c.id, c.ok)
		}
	}
	if importer.ReportKey("A1", "B2") != "reports/A1/B2.csv" {
		t.Errorf("ReportKey = %s", importer.ReportKey("A1", "B2"))
	}
}

// TestSampleEvents ensures the sample events of infra/events (for sam local
// invoke) decode into the function's Event: an S3 notification naming an
// import's key, one naming a dropped CSV, and a continuation.
func TestSampleEvents(t *testing.T) {
	read := func(name string) importer.Event {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "..", "infra", "events", name))
		if err != nil {
			t.Fatal(err)
		}
		var ev importer.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ev
	}
	ev := read("import-users.json")
	if len(ev.Records) != 1 || ev.Continue != nil || ev.Records[0].EventName != "ObjectCreated:Put" {
		t.Fatalf("import-users.json: %+v", ev)
	}
	if _, _, ok := importer.ParseKey(ev.Records[0].S3.Object.URLDecodedKey); !ok {
		t.Fatalf("import-users.json names %q, not an import key", ev.Records[0].S3.Object.URLDecodedKey)
	}
	ev = read("import-users-drop.json")
	if len(ev.Records) != 1 || ev.Records[0].PrincipalID.PrincipalID == "" {
		t.Fatalf("import-users-drop.json: %+v", ev)
	}
	if _, _, csv, ok := importer.ParseDropKey(ev.Records[0].S3.Object.URLDecodedKey); !ok || !csv {
		t.Fatalf("import-users-drop.json names %q, not a dropped CSV", ev.Records[0].S3.Object.URLDecodedKey)
	}
	ev = read("import-users-continue.json")
	if ev.Continue == nil || ev.Continue.AccountID == "" || ev.Continue.ImportID == "" || len(ev.Records) != 0 {
		t.Fatalf("import-users-continue.json: %+v", ev)
	}
}
