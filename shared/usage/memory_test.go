package usage

import (
	"testing"
	"time"

	"licenseadmin/shared/licadmin"
)

// TestUserMemory ensures a remembered user answers for its id, and for an
// email only while it still has that email; that a read which did not
// find a user forgets it; and that the memory reports each user's age.
func TestUserMemory(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ada := &licadmin.User{ID: "u1", Email: "ada@acme.test"}
	var m userMemory
	m.remember([]string{"u1"}, []string{"ada@acme.test"}, map[string]*licadmin.User{"u1": ada}, map[string]*licadmin.User{"ada@acme.test": ada}, t0)

	byID := &licadmin.UsageEvent{UserID: "u1"}
	byEmail := &licadmin.UsageEvent{Email: "ada@acme.test"}
	for _, tc := range []struct {
		name string
		e    *licadmin.UsageEvent
		want *licadmin.User
	}{
		{"by id", byID, ada},
		{"by email", byEmail, ada},
		{"unknown id", &licadmin.UsageEvent{UserID: "u2"}, nil},
		{"unknown email", &licadmin.UsageEvent{Email: "bob@acme.test"}, nil},
	} {
		u, age := m.find(tc.e, t0.Add(300*time.Millisecond))
		if u != tc.want || (u != nil && age != 300*time.Millisecond) {
			t.Errorf("%s: found %v aged %s, want %v aged 300ms", tc.name, u, age, tc.want)
		}
	}

	// Ada's email changes: the email no longer finds her.
	renamed := &licadmin.User{ID: "u1", Email: "ada.l@acme.test"}
	m.remember([]string{"u1"}, nil, map[string]*licadmin.User{"u1": renamed}, nil, t0)
	if u, _ := m.find(byEmail, t0); u != nil {
		t.Fatalf("the old email found %v", u)
	}
	// A read that does not find her forgets her.
	m.remember([]string{"u1"}, nil, nil, nil, t0)
	if u, _ := m.find(byID, t0); u != nil {
		t.Fatalf("a user not found by the last read is remembered: %v", u)
	}
}
