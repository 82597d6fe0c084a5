package store

import (
	"reflect"
	"testing"
	"time"

	"licenseadmin/shared/licadmin"
)

// TestUsageClaimDecodes ensures a claim carries what the recording
// function needs in its entry alone, repeating none of the entry's
// attributes at its top level (the claim is half of what ingestion writes
// per event), and that claims written before, which repeated them, decode
// to the same event.
func TestUsageClaimDecodes(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	ev := &licadmin.UsageEvent{ID: "e1", AccountID: "a1", Type: licadmin.EventSent, At: at, Bytes: 48213,
		MessageRef: "m1", Recipients: []string{"client@example.org"}, IP: "203.0.113.24"}
	u := &licadmin.User{ID: "u1", AccountID: "a1", LogGeneration: 2}
	claim := usageClaim(ev, u, at.Add(time.Minute))
	for name := range claim {
		switch name {
		case attrPK, attrSK, attrTTL, "entry":
		default:
			t.Errorf("the claim repeats %q outside its entry", name)
		}
	}
	want := &CountedEvent{UserID: "u1", AccountID: "a1", Type: licadmin.EventSent, At: at, Bytes: 48213, Entry: getM(claim, "entry")}
	if got := CountedEventFromImage(claim); !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	old := Item{}
	for k, v := range claim {
		old[k] = v
	}
	for _, name := range []string{"eventId", "accountId", "userId", "at", "type", "bytes"} {
		old[name] = getM(claim, "entry")[name]
	}
	if got := CountedEventFromImage(old); !reflect.DeepEqual(got, want) {
		t.Fatalf("a claim of the earlier shape decoded %+v, want %+v", got, want)
	}
}
