package store

import (
	"testing"
	"time"

	"licenseadmin/shared/licadmin"
)

// TestSearchViewVersion pins the JSON of a user that each
// searchViewVersion names, for a user holding every field and one holding
// none of the optional ones: the search index entries hold it, and a page
// writes it out as it is, so a change of the user's JSON (a field, a
// name, a format) must come with a new version, for which the entries of
// the old one are read from the users' items until they are rewritten.
func TestSearchViewVersion(t *testing.T) {
	views := map[int64][2]string{
		1: {`{"id":"u1","email":"jane@acme.test","firstName":"Jane","lastName":"Doe","language":"fr","role":"admin","status":"active","license":{"tier":"pro","assignedAt":"2026-11-01T10:00:00.123456789Z"},"mobile":"+33612345678","timeZone":"Europe/Paris","security":{"portal2fa":true,"protectedReplies":"all"},"createdAt":"2026-11-01T10:00:00.123456789Z","updatedAt":"2026-11-01T11:00:00.123456789Z"}`,
			`{"id":"u2","email":"bob@acme.test","firstName":"Bob","lastName":"Smith","language":"en","role":"user","status":"pending","license":null,"mobile":null,"timeZone":null,"security":{"portal2fa":false,"protectedReplies":"none"},"createdAt":"2026-11-01T10:00:00.123456789Z","updatedAt":"2026-11-01T10:00:00.123456789Z"}`},
	}
	at := time.Date(2026, 11, 1, 10, 0, 0, 123456789, time.UTC)
	mobile, tz := "+33612345678", "Europe/Paris"
	full := &licadmin.User{ID: "u1", AccountID: "a1", Email: "jane@acme.test", FirstName: "Jane", LastName: "Doe",
		Language: "fr", Role: licadmin.RoleAdmin, Status: licadmin.StatusActive,
		License: &licadmin.License{Tier: licadmin.Pro, AssignedAt: at}, Mobile: &mobile, TimeZone: &tz,
		Security:  licadmin.Security{Portal2FA: true, ProtectedReplies: "all"},
		CreatedAt: at, UpdatedAt: at.Add(time.Hour), Version: 7, LogGeneration: 2}
	bare := &licadmin.User{ID: "u2", AccountID: "a1", Email: "bob@acme.test", FirstName: "Bob", LastName: "Smith",
		Language: "en", Role: licadmin.RoleUser, Status: licadmin.StatusPending,
		Security: licadmin.Security{ProtectedReplies: "none"}, CreatedAt: at, UpdatedAt: at, Version: 1}
	got := [2]string{string(searchView(full)), string(searchView(bare))}
	if got != views[searchViewVersion] {
		t.Fatalf("the JSON of a user is not what searchViewVersion %d names: give it a new version, and add\n\t%d: {%#q, %#q},",
			searchViewVersion, searchViewVersion+1, got[0], got[1])
	}
}
