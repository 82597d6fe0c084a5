package usage

import (
	"sync"
	"time"

	"licenseadmin/shared/licadmin"
)

// RememberUsers is how long the ingest function decides on a user it read
// (Ingester.Remember): about as long as DynamoDB's eventually consistent
// reads may already lag, so that a change of a user (its license removed
// or transferred, its email given to another user, the user deleted)
// reaches ingestion within about two seconds instead of one.
const RememberUsers = time.Second

// userMemory is the users an ingest function instance read lately, by id
// and by email, with when each was read (Ingester.Remember).
type userMemory struct {
	mu      sync.Mutex
	byID    map[string]rememberedUser
	byEmail map[string]string // email -> user id, as its claim named it
}

type rememberedUser struct {
	u    *licadmin.User
	read time.Time
}

// maxRememberedUsers bounds userMemory (a few hundred bytes each); full,
// it starts again empty.
const maxRememberedUsers = 100_000

// find returns the user e names as remembered, and how long ago it was
// read; nil when none is, or when the user remembered for e's email no
// longer has it.
func (m *userMemory) find(e *licadmin.UsageEvent, now time.Time) (*licadmin.User, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := e.UserID
	if id == "" {
		id = m.byEmail[e.Email]
	}
	r, ok := m.byID[id]
	if !ok || (e.UserID == "" && r.u.Email != e.Email) {
		return nil, 0
	}
	return r.u, now.Sub(r.read)
}

// remember keeps the users of a read of ids and emails made at now, and
// forgets those it did not find.
func (m *userMemory) remember(ids, emails []string, byID, byEmail map[string]*licadmin.User, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil || len(m.byID)+len(m.byEmail) >= maxRememberedUsers {
		m.byID, m.byEmail = map[string]rememberedUser{}, map[string]string{}
	}
	for _, id := range ids {
		if byID[id] == nil {
			delete(m.byID, id)
		}
	}
	for _, email := range emails {
		if byEmail[email] == nil {
			delete(m.byEmail, email)
		}
	}
	for id, u := range byID {
		m.byID[id] = rememberedUser{u: u, read: now}
	}
	for email, u := range byEmail {
		m.byEmail[email] = u.ID
		m.byID[u.ID] = rememberedUser{u: u, read: now}
	}
}
