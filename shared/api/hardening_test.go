package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/logs"
)

// idemItems counts the idempotency records in the table.
func idemItems(t *testing.T, env *apitest.Env) int {
	t.Helper()
	n := 0
	for _, it := range env.Scan(t) {
		if strings.HasPrefix(avString(it["pk"]), "IDEM#") {
			n++
		}
	}
	return n
}

// TestReplayAuthorized ensures a remembered answer goes only to a caller
// who may still make the request: an admin who repeats a request after
// being demoted, or deleted, is answered 403 as a fresh request would be,
// never the answer it had as an admin; a reused key of a demoted admin is
// 403 too, not idempotency_key_reused.
func TestReplayAuthorized(t *testing.T) {
	f := newXFixture(t)
	boss := "boss@acme.test"
	bossID := f.userAs(t, f.admin, boss, "admin")
	u := f.user(t, "u@acme.test")

	req := withHeaders(userReq(routeAssign, boss, u, map[string]string{"tier": "eco"}), idemKey("k1"))
	first := f.h.assign(req)
	first.Want(t, http.StatusOK)
	wantReplay(t, first, f.h.assign(req))

	f.patch(f.admin, bossID, map[string]string{"role": "user"}, nil).Want(t, http.StatusOK)
	f.h.assign(req).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	other := withHeaders(userReq(routeAssign, boss, u, map[string]string{"tier": "pro"}), idemKey("k1"))
	f.h.assign(other).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)

	f.deleteUser(userReq(routeDeleteUser, f.admin, bossID, nil)).Want(t, http.StatusNoContent)
	f.h.assign(req).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	wantPool(t, f.pool(t), licadmin.Eco, 2, 1)
}

// TestIdempotencyKeyScopes ensures records of (scope, key) pairs whose
// plain join would be the same string ("a#b" + "c" and "a" + "b#c") are
// distinct records.
func TestIdempotencyKeyScopes(t *testing.T) {
	env := apitest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()
	a := &idem.Record{Scope: "a#b@acme.test", Key: "c", Hash: "h1", Status: 200, Body: []byte("1"), CreatedAt: now}
	b := &idem.Record{Scope: "a", Key: "b@acme.test#c", Hash: "h2", Status: 200, Body: []byte("2"), CreatedAt: now}
	for _, r := range []*idem.Record{a, b} {
		if err := env.App.Store.PutIdempotency(ctx, r, time.Now()); err != nil {
			t.Fatalf("put %s/%s: %v", r.Scope, r.Key, err)
		}
	}
	for _, r := range []*idem.Record{a, b} {
		got, err := env.App.Store.GetIdempotency(ctx, r.Scope, r.Key, time.Now())
		if err != nil || got == nil || got.Hash != r.Hash {
			t.Fatalf("get %s/%s: %+v, %v; want hash %s", r.Scope, r.Key, got, err, r.Hash)
		}
	}
}

// TestPublicRefusalsNotRemembered ensures an anonymous client looping on
// POST /v1/activations with fresh Idempotency-Keys writes nothing: a
// refusal (410, 400) on a public route is never remembered.
func TestPublicRefusalsNotRemembered(t *testing.T) {
	env := apitest.New(t)
	env.MustAccount(t, "Acme", "admin@acme.test")
	before := len(env.Scan(t))
	h := api.Activate(env.App)
	for i, body := range []any{
		map[string]string{"token": "bm90LWEtdG9rZW4"}, map[string]string{"token": strings.Repeat("A", 43)}, `{"token":`, map[string]string{},
	} {
		r := apitest.Do(t, h, apitest.Request{Route: "POST /v1/activations", Body: body,
			Headers: map[string]string{"Idempotency-Key": "fresh-" + string(rune('a'+i))}})
		if r.StatusCode != http.StatusGone && r.StatusCode != http.StatusBadRequest {
			t.Fatalf("body %v: status %d, want 410 or 400", body, r.StatusCode)
		}
	}
	if n := len(env.Scan(t)); n != before || idemItems(t, env) != 0 {
		t.Fatalf("anonymous refusals wrote %d items", n-before)
	}
}

// TestDeleteFromPoolDemotedAdmin ensures an admin demoted before its
// delete-from-pool request is answered 403, not what the pool holds
// (licenses_in_use when too many are asked), and nothing changes: the
// request's read of the claim decides before the pool is read.
func TestDeleteFromPoolDemotedAdmin(t *testing.T) {
	f := newXFixture(t)
	boss := "boss@acme.test"
	bossID := f.userAs(t, f.admin, boss, "admin")
	f.patch(f.admin, bossID, map[string]string{"role": "user"}, nil).Want(t, http.StatusOK)
	for _, q := range []string{"1", "100"} { // enough unassigned, and not
		f.h.del(apitest.Request{Route: routeDelete, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": q}, Email: boss}).
			WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	}
	wantPool(t, f.pool(t), licadmin.Eco, 2, 0)
}

// exportFiles counts the export files of a user in the bucket.
func exportFiles(t *testing.T, env *apitest.Env, accountID, userID string) int {
	t.Helper()
	out, err := env.App.Files.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: &env.App.Files.Bucket, Prefix: aws.String(logs.UserPrefix(accountID, userID))})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Contents)
}

// TestExportGoneWithLogs ensures an export's file goes with the logs it
// holds: after remove, transfer or user delete, the purge has the export
// function delete the former holder's export files (a job on the export
// queue), so a download URL handed out before is refused; files of the new
// generation stay.
func TestExportGoneWithLogs(t *testing.T) {
	for _, op := range []string{"remove", "transfer", "delete user"} {
		t.Run(op, func(t *testing.T) {
			f := newUsageFixture(t)
			mail := f.WithEmail(t) // runs the stream: emails and the purge
			q := f.UseExports()
			f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
			f.someEvents(t, f.adaEmail, 3)
			id := f.startExport(t, f.ada, nil, nil)
			if failed := f.RunExports(t, q); len(failed) != 0 {
				t.Fatalf("export failed: %v", failed)
			}
			v := f.exportStatus(t, id)
			if v.Status != "done" || v.URL == nil {
				t.Fatalf("export %+v, want done", v)
			}
			download(t, *v.URL) // works before

			switch op {
			case "remove":
				f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
			case "transfer":
				f.transfer(f.admin, f.ada, f.bob).Want(t, http.StatusOK)
			case "delete user":
				f.del(userReq(routeDeleteUser, f.admin, f.ada, nil)).Want(t, http.StatusNoContent)
			}
			mail.Drain(t)
			if n := exportFiles(t, f.Env, f.acct, f.ada); n == 0 {
				t.Fatal("the stream deleted the export files itself; it should leave them to the export function")
			}
			if failed := f.RunExports(t, q); len(failed) != 0 {
				t.Fatalf("export files not deleted: %v", failed)
			}

			resp, err := http.Get(*v.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("the export URL still downloads the former holder's logs after %s", op)
			}
			if n := exportFiles(t, f.Env, f.acct, f.ada); n != 0 {
				t.Fatalf("%d export files of the former holder left after %s", n, op)
			}
			if op == "delete user" {
				return
			}
			// An export of the new generation is kept by the next purge
			// of nothing else. (An event of the new generation: timed
			// after the change, and decided on the user as it is now.)
			f.outliveMemory()
			if got := f.eventsSince(t, f.adaEmail, 1, time.Now()); len(got) != 1 {
				t.Fatal(got)
			}
			if got := refs(f.userLogs(t, f.admin, f.ada, nil).Items); len(got) != 1 {
				t.Fatalf("the new generation's log %v, want its one event", got)
			}
			f.startExport(t, f.ada, nil, nil)
			f.RunExports(t, q)
			mail.Drain(t)
			f.RunExports(t, q)
			if n := exportFiles(t, f.Env, f.acct, f.ada); n != 1 {
				t.Fatalf("%d export files of the new generation, want 1", n)
			}
		})
	}
}

// genChangingObjects is export storage whose Write runs change once the
// file is written: the log generation goes while the export runs.
type genChangingObjects struct {
	logs.Objects
	change func()
}

func (g *genChangingObjects) Write(ctx context.Context, key, contentType string, write func(io.Writer) error) error {
	err := g.Objects.Write(ctx, key, contentType, write)
	g.change()
	return err
}

// TestExportRaceWithRemove ensures a file written while its generation
// went (and after the purge looked for files) is deleted by the export
// itself, which ends failed.
func TestExportRaceWithRemove(t *testing.T) {
	f := newUsageFixture(t)
	q := f.UseExports()
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	f.someEvents(t, f.adaEmail, 2)
	id := f.startExport(t, f.ada, nil, nil)
	f.App.Exports.Objects = &genChangingObjects{Objects: f.App.Exports.Objects, change: func() {
		f.h.remove(userReq(routeRemove, f.admin, f.ada, nil)).Want(t, http.StatusOK)
	}}
	f.RunExports(t, q)
	if v := f.exportStatus(t, id); v.Status != "failed" || v.URL != nil {
		t.Fatalf("export %+v, want failed", v)
	}
	if n := exportFiles(t, f.Env, f.acct, f.ada); n != 0 {
		t.Fatalf("%d export files left", n)
	}
}

// TestListsReadBounded ensures a filtered list reads a bounded number of
// items per request: when its filter drops everything it reads, a page
// stops early with what it found (nothing, here) and a cursor, and
// following the cursors finds every match once.
func TestListsReadBounded(t *testing.T) {
	f := newUsageFixture(t)
	f.App.Store.MaxItemsRead = 10
	f.assign(f.admin, f.ada, "eco").Want(t, http.StatusOK)
	now := time.Now()
	var msgs []any
	var opened []string
	for i := range 27 {
		typ := licadmin.EventSent
		if i >= 25 { // the two oldest
			typ = licadmin.EventOpened
		}
		m := event(f.acct, f.adaEmail, typ, now.Add(-time.Duration(i+1)*time.Minute))
		msgs = append(msgs, m)
		if typ == licadmin.EventOpened {
			opened = append(opened, m.MessageRef)
		}
	}
	ingest(t, f.Env, msgs...)

	t.Run("logs by type", func(t *testing.T) {
		q := map[string]string{"type": "opened", "limit": "50"}
		var got []string
		pages := 0
		for {
			p := f.userLogs(t, f.admin, f.ada, q)
			pages++
			got = append(got, refs(p.Items)...)
			if p.NextCursor == nil {
				break
			}
			if pages > 10 {
				t.Fatal("the cursor does not advance")
			}
			q["cursor"] = *p.NextCursor
		}
		if pages < 3 || !slices.Equal(got, opened) {
			t.Fatalf("%d pages found %v, want %v over at least 3 pages of at most 10 items read", pages, got, opened)
		}
	})

	t.Run("users by license", func(t *testing.T) {
		for i := range 12 {
			f.user(t, fmt.Sprintf("u%02d@acme.test", i))
		}
		first := f.listPage(t, f.admin, map[string]string{"license": "pro"})
		if len(first.Items) != 0 || first.NextCursor == nil {
			t.Fatalf("first page %d users, cursor %v; want none and a cursor", len(first.Items), first.NextCursor)
		}
		all := flatten(f.listAll(t, f.admin, map[string]string{"license": "eco"}))
		if !slices.Equal(all, []string{f.ada}) {
			t.Fatalf("eco users %v, want [%s]", all, f.ada)
		}
	})
}

// TestSelfRouteReplay ensures a route any user may call (its own journal's
// export) replays a remembered answer to that user, who is no admin, and
// to nobody who is no user.
func TestSelfRouteReplay(t *testing.T) {
	f := newUsageFixture(t)
	f.UseExports()
	h := api.ExportMyLogs(f.App)
	req := apitest.Request{Route: "POST /v1/me/logs/export", Email: f.adaEmail, Headers: idemKey("mine-1")}
	first := apitest.Do(t, h, req)
	first.Want(t, http.StatusAccepted)
	wantReplay(t, first, apitest.Do(t, h, req))
	f.del(userReq(routeDeleteUser, f.admin, f.ada, nil)).Want(t, http.StatusNoContent)
	apitest.Do(t, h, req).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
}

// TestRefusedBeforeValidated ensures a caller who may not use a route is
// refused 403 whatever its input: a plain user's malformed body, bad
// query or bad Idempotency-Key on an admin route answers 403 as a valid
// request does, not 400, and so does a token whose email is nobody's;
// an admin gets the 400, and so does a plain user on its own /v1/me
// routes. Nothing is written.
func TestRefusedBeforeValidated(t *testing.T) {
	f := newXFixture(t)
	plain := "plain@acme.test"
	u := f.userAs(t, f.admin, plain, "user")
	assign, del := api.AssignLicense(f.App), api.DeletePoolLicenses(f.App)
	create, list, bulk := api.CreateUser(f.App), api.ListUsers(f.App), api.BulkLicenses(f.App)
	exportMine := api.ExportMyLogs(f.App)
	bad := []struct {
		name string
		h    apigw.Handler
		req  func(caller string) apitest.Request
	}{
		{"assign, body not JSON", assign, func(c string) apitest.Request { return userReq(routeAssign, c, u, "{") }},
		{"assign, unknown tier", assign, func(c string) apitest.Request { return userReq(routeAssign, c, u, map[string]string{"tier": "gold"}) }},
		{"create user, fields missing", create, func(c string) apitest.Request {
			return apitest.Request{Route: routeUsers, Email: c, Body: map[string]string{"email": "x"}}
		}},
		{"list, bad limit", list, func(c string) apitest.Request {
			return apitest.Request{Route: routeList, Email: c, Query: map[string]string{"limit": "0"}}
		}},
		{"delete from pool, bad quantity", del, func(c string) apitest.Request {
			return apitest.Request{Route: routeDelete, Email: c, Params: map[string]string{"tier": "eco"}, Query: map[string]string{"quantity": "x"}}
		}},
		{"bulk, no users", bulk, func(c string) apitest.Request {
			return apitest.Request{Route: routeBulk, Email: c, Body: map[string]any{"action": "assign", "tier": "eco", "userIds": []string{}}}
		}},
		{"assign, bad Idempotency-Key", assign, func(c string) apitest.Request {
			return withHeaders(userReq(routeAssign, c, u, map[string]string{"tier": "eco"}), map[string]string{"Idempotency-Key": "bad\tkey"})
		}},
	}
	before := len(f.Scan(t))
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			apitest.Do(t, c.h, c.req(plain)).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
			apitest.Do(t, c.h, c.req("nobody@acme.test")).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
			apitest.Do(t, c.h, c.req(f.admin)).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
		})
	}
	// Routes any user may call (apigw.Self) keep their 400s for users.
	apitest.Do(t, exportMine, apitest.Request{Route: routeMyExport, Email: plain, Body: map[string]string{"format": "xlsx"}}).
		WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	apitest.Do(t, api.ListMyLogs(f.App), apitest.Request{Route: routeMyLogs, Email: plain, Query: map[string]string{"limit": "0"}}).
		WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	if n := len(f.Scan(t)); n != before {
		t.Fatalf("refused requests wrote %d items", n-before)
	}
}
