package logs_test

import (
	"testing"
	"time"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/logs"
)

// TestParseRange ensures the documented range rules: RFC 3339 times or
// dates, a date as to including its whole day, 30 days by default, from
// before to, and errors naming the parameter.
func TestParseRange(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 50, 0, 0, time.UTC)
	day := 24 * time.Hour
	cases := []struct {
		from, to, typ string
		want          licadmin.LogRange
		field         string
	}{
		{want: licadmin.LogRange{From: now.Add(-30 * day), To: now}},
		{from: "2026-11-01", want: licadmin.LogRange{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: now}},
		{from: "2026-11-01", to: "2026-11-02", typ: "signed", want: licadmin.LogRange{
			From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), Type: licadmin.EventSigned}},
		{from: "2026-11-01T10:00:00+02:00", to: "2026-11-01T12:00:00Z", want: licadmin.LogRange{
			From: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}},
		{to: "2026-10-31", want: licadmin.LogRange{From: time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}},
		{from: "2026-11-24", field: "from"},
		{from: "2026-11-01", to: "2026-10-01", field: "from"},
		{from: "11/01/2026", field: "from"},
		{to: "2026-02-30", field: "to"},
		{from: "0001-01-01", field: "from"},
		{typ: "read", field: "type"},
	}
	for _, c := range cases {
		got, err := logs.ParseRange(c.from, c.to, c.typ, now)
		if c.field != "" {
			e, ok := err.(*licadmin.Error)
			if !ok || e.Code != licadmin.EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != c.field {
				t.Errorf("ParseRange(%q, %q, %q) error %v, want EINVALID on %s", c.from, c.to, c.typ, err, c.field)
			}
			continue
		}
		if err != nil || !got.From.Equal(c.want.From) || !got.To.Equal(c.want.To) || got.Type != c.want.Type {
			t.Errorf("ParseRange(%q, %q, %q) = %+v, %v; want %+v", c.from, c.to, c.typ, got, err, c.want)
		}
	}
}
