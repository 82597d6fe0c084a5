// Package callercache remembers, for a few seconds, the administrators a
// function has just read, so that a page of the user list can be read
// while the admin's email claim is read again.
//
// It is safe only where the caller is checked again before anything is
// answered: the user list reads the claim at the same time as the
// remembered account's page and returns the page only when the fresh
// claim names an admin of that account (user.Service.List). Nothing may be
// answered on what the cache says alone. (License changes used it too,
// with a check of the claim in every transaction; they now read the claim
// with their users, which costs DynamoDB less: docs/design.md.)
package callercache

import (
	"sync"
	"time"

	"licenseadmin/shared/licadmin"
)

// DefaultTTL is how long a caller is remembered. It bounds how long a
// stale entry costs an early page read that is dropped, not what the
// entry may grant: the fresh claim decides.
const DefaultTTL = 10 * time.Second

// DefaultMax bounds the callers remembered by one function instance.
const DefaultMax = 1024

// Cache is a bounded map of admins by email with an expiry. A nil *Cache
// remembers nothing. It is safe for concurrent use.
type Cache struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]entry
}

type entry struct {
	c       licadmin.Caller
	expires time.Time
}

// New returns a cache that keeps a caller for ttl, at most max of them.
func New(ttl time.Duration, max int) *Cache {
	return &Cache{ttl: ttl, max: max, m: map[string]entry{}}
}

// Get returns a copy of the admin remembered for email at now, or nil.
func (c *Cache) Get(email string, now time.Time) *licadmin.Caller {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[email]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.m, email)
		return nil
	}
	cl := e.c
	return &cl
}

// Put remembers cl, read at now, when it is an admin; other callers are
// never remembered, so the cache only ever speeds up what an admin may do.
func (c *Cache) Put(cl *licadmin.Caller, now time.Time) {
	if c == nil || !cl.IsAdmin() || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[cl.Email]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m) // all fresh: start over rather than track ages
		}
	}
	c.m[cl.Email] = entry{c: *cl, expires: now.Add(c.ttl)}
}

// Forget drops what is remembered for email: its use failed, and the next
// request reads the claim again.
func (c *Cache) Forget(email string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, email)
}
