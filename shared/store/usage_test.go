package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// TestUsageItemsDecode ensures the recording function reads from a log
// entry's INSERT what the counters need, with the entry's generation; that
// a claim carries its entry alone (repeating none of its attributes at its
// top level, since DynamoDB's cost grows with the item) and hands it over
// marked to count; and that what an earlier release wrote — claims that
// repeated the entry's attributes, entries unmarked because their claim
// was counted — is handled as it was meant: the claim puts its entry, the
// unmarked entry does not count again.
func TestUsageItemsDecode(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	ev := &licadmin.UsageEvent{ID: "e1", AccountID: "a1", Type: licadmin.EventSent, At: at, Bytes: 48213,
		MessageRef: "m1", Recipients: []string{"client@example.org"}, IP: "203.0.113.24"}
	u := &licadmin.User{ID: "u1", AccountID: "a1", LogGeneration: 12}
	entry := logEntry(ev, u)
	want := &CountedEvent{UserID: "u1", AccountID: "a1", Generation: 12, Type: licadmin.EventSent, At: at, Bytes: 48213}
	if got := CountedEventFromImage(entry); !reflect.DeepEqual(got, want) {
		t.Fatalf("entry decoded %+v, want %+v", got, want)
	}

	claim := usageClaim(ev, u, entry, at.Add(time.Minute))
	for name := range claim {
		switch name {
		case attrPK, attrSK, attrTTL, "entry":
		default:
			t.Errorf("the claim repeats %q outside its entry", name)
		}
	}
	if CountedEventFromImage(claim) != nil {
		t.Fatal("a claim's INSERT counts: its entry's INSERT counts it")
	}
	if got := ClaimedEntry(claim); !reflect.DeepEqual(got, entry) {
		t.Fatalf("claimed entry %v, want %v", got, entry)
	}

	unmarked := Item{}
	for k, v := range entry {
		if k != attrCounts {
			unmarked[k] = v
		}
	}
	if got := CountedEventFromImage(unmarked); got != nil {
		t.Fatalf("an entry an earlier release put from its (counted) claim counts again: %+v", got)
	}
	old := Item{}
	for k, v := range claim {
		old[k] = v
	}
	old["entry"] = &types.AttributeValueMemberM{Value: unmarked}
	for _, name := range []string{"eventId", "accountId", "userId", "at", "type", "bytes"} {
		old[name] = entry[name]
	}
	if got := ClaimedEntry(old); !reflect.DeepEqual(got, entry) {
		t.Fatalf("a claim of an earlier release put %v, want the marked entry %v", got, entry)
	}
	if _, ok := unmarked[attrCounts]; ok {
		t.Fatal("ClaimedEntry changed the claim's image")
	}
}

// TestLogGeneration reads generations back from log partition keys.
func TestLogGeneration(t *testing.T) {
	for _, tc := range []struct {
		pk   string
		gen  int64
		want bool
	}{
		{logPK("u1", 0), 0, true},
		{logPK("u#1", 41), 41, true},
		{"LOG#u1", 0, false},
		{"USER#u1#3", 0, false},
		{"LOG#u1#x", 0, false},
	} {
		gen, ok := logGeneration(tc.pk)
		if gen != tc.gen || ok != tc.want {
			t.Errorf("logGeneration(%q) = %d %v, want %d %v", tc.pk, gen, ok, tc.gen, tc.want)
		}
	}
}
