package stats_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/stats"
)

// TestParsePeriod ensures periods are whole months, the current one by
// default, at most 12, from not after to.
func TestParsePeriod(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 50, 0, 0, time.UTC)
	ok := []struct {
		from, to string
		months   []string
	}{
		{"", "", []string{"2026-11"}},
		{"2026-09", "", []string{"2026-09", "2026-10", "2026-11"}},
		{"", "2026-02", []string{"2026-02"}},
		{"2025-12", "2026-01", []string{"2025-12", "2026-01"}},
		{"2025-12", "2026-11", []string{"2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"}},
	}
	for _, c := range ok {
		p, err := stats.ParsePeriod(c.from, c.to, now)
		if err != nil || !slices.Equal(p.Months, c.months) || p.From != c.months[0] || p.To != c.months[len(c.months)-1] {
			t.Errorf("ParsePeriod(%q, %q) = %+v, %v; want %v", c.from, c.to, p, err, c.months)
		}
	}
	for _, c := range [][2]string{{"2026-13", ""}, {"", "2026-1"}, {"2026-11", "2026-10"}, {"2025-11", "2026-11"}, {"26-11", ""}} {
		if _, err := stats.ParsePeriod(c[0], c[1], now); licadmin.ErrorCode(err) != licadmin.EINVALID {
			t.Errorf("ParsePeriod(%q, %q) error %v, want EINVALID", c[0], c[1], err)
		}
	}
}

// TestWriteCSV ensures the CSV's header, number formats and neutralised
// cells.
func TestWriteCSV(t *testing.T) {
	pro := licadmin.Pro
	rep := &stats.Report{Items: []stats.Row{
		{UserID: "u1", Email: "a@x.test", FirstName: "-Ann", LastName: "+B", License: &pro, Status: licadmin.StatusActive,
			Usage: licadmin.UsageOf(licadmin.Counters{Sent: 3, BytesSent: 12, Opens: 1, Signed: 2})},
	}}
	var b bytes.Buffer
	if err := stats.WriteCSV(&b, rep); err != nil {
		t.Fatal(err)
	}
	want := "\uFEFF" + strings.Join(stats.CSVHeader, ",") + "\r\n" + "u1,a@x.test,'-Ann,'+B,pro,active,3,12,1,0,2,0.3333,0.6667\r\n"
	if b.String() != want {
		t.Fatalf("CSV %q, want %q", b.String(), want)
	}
}
