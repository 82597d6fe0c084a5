package usage_test

import (
	"slices"
	"testing"
	"time"

	"licenseadmin/shared/usage"
)

// TestParse ensures a valid event is normalised (email lower-cased, time
// in UTC, IP canonical, no recipients as an empty list) and that malformed
// ones are dropped, never retried.
func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 50, 0, 0, time.UTC)
	ev, err := usage.Parse([]byte(`{"eventId":"e1","accountId":"a1","email":" Ada@ACME.test ","type":"opened",
		"at":"2026-11-23T09:50:00+01:00","messageRef":"m","bytes":0,"ip":"2001:DB8::0:1"}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Email != "ada@acme.test" || !ev.At.Equal(now) || ev.At.Location() != time.UTC || ev.IP != "2001:db8::1" || ev.Recipients == nil || ev.Type != "opened" {
		t.Fatalf("parsed %+v", ev)
	}
	for _, body := range []string{
		``, `null`, `{}`, `{"eventId":"e 1","accountId":"a","email":"a@b.test","type":"sent","at":"2026-11-23T08:00:00Z"}`,
		`{"eventId":"e","accountId":"a","email":"not-an-email","type":"sent","at":"2026-11-23T08:00:00Z"}`,
		`{"eventId":"e","accountId":"a","email":"a@b.test","type":"sent","at":"2026-11-23T09:00:00Z"}`,
		`{"eventId":"e","accountId":"a","email":"a@b.test","type":"sent","at":"2026-11-23T08:00:00Z","recipients":[""]}`,
		`{"eventId":"e","accountId":"a","email":"a@b.test","type":"sent","at":"2026-11-23T08:00:00Z","bytes":"12"}`,
	} {
		if _, err := usage.Parse([]byte(body), now); !usage.IsDropped(err) {
			t.Errorf("Parse(%s) = %v, want a dropped event", body, err)
		}
	}
	ok, _ := usage.Parse([]byte(`{"eventId":"e","accountId":"a","userId":"u","type":"sent","at":"2026-11-23T08:00:00Z","recipients":["x@y.test"]}`), now)
	if ok == nil || !slices.Equal(ok.Recipients, []string{"x@y.test"}) || ok.Email != "" {
		t.Fatalf("by user id: %+v", ok)
	}
}
