package callercache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"licenseadmin/shared/callercache"
	"licenseadmin/shared/licadmin"
)

func admin(email string) *licadmin.Caller {
	return &licadmin.Caller{Email: email, UserID: "u-" + email, AccountID: "a1", Role: licadmin.RoleAdmin}
}

// TestCache ensures admins are remembered until their expiry, other callers
// never, Forget drops an entry, and what Get returns is a copy.
func TestCache(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := callercache.New(10*time.Second, 10)
	c.Put(admin("a@x.test"), t0)
	c.Put(&licadmin.Caller{Email: "u@x.test", AccountID: "a1", Role: licadmin.RoleUser}, t0)
	c.Put(nil, t0)
	tests := []struct {
		name  string
		email string
		at    time.Time
		want  bool
	}{
		{"admin, fresh", "a@x.test", t0.Add(9 * time.Second), true},
		{"admin, expired", "a@x.test", t0.Add(10 * time.Second), false},
		{"not an admin", "u@x.test", t0, false},
		{"unknown", "n@x.test", t0, false},
	}
	for _, tt := range tests {
		if got := c.Get(tt.email, tt.at); (got != nil) != tt.want {
			t.Errorf("%s: Get = %+v, want found %v", tt.name, got, tt.want)
		}
	}
	c.Put(admin("b@x.test"), t0)
	got := c.Get("b@x.test", t0)
	got.Role = licadmin.RoleUser
	if again := c.Get("b@x.test", t0); again == nil || again.Role != licadmin.RoleAdmin {
		t.Errorf("a change to what Get returned reached the cache: %+v", again)
	}
	c.Forget("b@x.test")
	if c.Get("b@x.test", t0) != nil {
		t.Error("Forget kept the entry")
	}
	var none *callercache.Cache
	none.Put(admin("a@x.test"), t0)
	if none.Get("a@x.test", t0) != nil {
		t.Error("a nil cache remembered")
	}
	none.Forget("a@x.test")
}

// TestCacheBounded ensures the cache never holds more than its maximum,
// dropping expired entries first, under concurrent use.
func TestCacheBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := callercache.New(time.Second, 8)
	for i := range 8 {
		c.Put(admin(fmt.Sprintf("old%d@x.test", i)), t0)
	}
	later := t0.Add(2 * time.Second)
	c.Put(admin("new@x.test"), later)
	if c.Get("new@x.test", later) == nil {
		t.Fatal("the new entry was not kept")
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				e := fmt.Sprintf("w%d-%d@x.test", w, i)
				c.Put(admin(e), later)
				c.Get(e, later)
			}
		}()
	}
	wg.Wait()
	n := 0
	for w := range 8 {
		for i := range 100 {
			if c.Get(fmt.Sprintf("w%d-%d@x.test", w, i), later) != nil {
				n++
			}
		}
	}
	if n > 8 {
		t.Errorf("%d entries remembered, want at most 8", n)
	}
}
