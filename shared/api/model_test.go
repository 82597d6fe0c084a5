package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/store"
)

// The model-based test: random sequences of every state-changing
// operation, sent through the real handlers over DynamoDB Local with
// injected transaction conflicts, throttling and lost responses (and
// clients that lose an answer and retry with the same Idempotency-Key),
// each step checked against a plain Go model of the rules: pool counters,
// who holds which license, which email belongs to whom, each user's names,
// log generation and log entries, activation, and which users a search
// by a prefix of an email or name finds.
//
// To cover a new operation, add a modelOp to modelOps: its weight, and a
// run that sends the request and applies to the model what the rules say
// must happen (the answer the rules predict is checked against the one
// the service gives). The checks after each step need nothing new unless
// the operation changes state the model does not hold yet.

// mUser is a user as the model knows it.
type mUser struct {
	id, email   string
	first, last string
	tier        licadmin.Tier // "" without a license
	gen         int64         // log generation
	logs        int           // entries in the current generation
	active      bool
}

// mToken is an activation link the model handed out.
type mToken struct {
	token, userID, email string
	used                 bool
}

// model is the state the rules imply.
type model struct {
	purchased, assigned map[licadmin.Tier]int64
	users               map[string]*mUser // by id
	emails              map[string]string // canonical email -> user id
	tokens              []*mToken
	// admin is the account's admin, found by searches too.
	admin mUser
}

func (m *model) available(t licadmin.Tier) int64 { return m.purchased[t] - m.assigned[t] }

// modelRun is one random sequence.
type modelRun struct {
	t     *testing.T
	f     *xfixture
	rng   *rand.Rand
	m     *model
	seq   int
	users []string // candidate ids, deleted ones included
}

// modelOp is one operation of the random sequences.
type modelOp struct {
	name   string
	weight int
	run    func(r *modelRun)
}

var modelOps = []modelOp{
	{"assign", 6, (*modelRun).assign},
	{"modify", 4, (*modelRun).modify},
	{"remove", 3, (*modelRun).remove},
	{"transfer", 3, (*modelRun).transfer},
	{"delete from pool", 1, (*modelRun).deleteFromPool},
	{"add licenses", 2, (*modelRun).addLicenses},
	{"create user", 4, (*modelRun).createUser},
	{"edit email", 2, (*modelRun).editEmail},
	{"delete user", 1, (*modelRun).deleteUser},
	{"usage", 2, (*modelRun).usage},
	{"activation link", 2, (*modelRun).activationLink},
	{"activate", 2, (*modelRun).activate},
	{"bulk license change", 3, (*modelRun).bulk},
	{"import", 2, (*modelRun).importRows},
}

// TestModel runs random sequences of every state-changing operation
// against the model (see modelOps), with injected faults.
func TestModel(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			var mu sync.Mutex
			faultRNG := rand.New(rand.NewPCG(seed, 99))
			faults, _ := apitest.Faults(func(op string, _ int) apitest.Fault {
				mu.Lock()
				defer mu.Unlock()
				p := faultRNG.Float64()
				switch {
				case op == "TransactWriteItems" && p < 0.08:
					return apitest.Conflict
				case op == "TransactWriteItems" && p < 0.12:
					return apitest.LostResponse
				case (op == "TransactWriteItems" || op == "BatchGetItem" || op == "Query") && p < 0.16:
					return apitest.Throttle
				}
				return apitest.NoFault
			})
			f := extend(t, newFixture(t, faults))
			f.App.Activation.PublicBaseURL = "http://activation.test"
			if _, err := f.App.Operator.ApproveDomain(context.Background(), operator.ApproveDomainInput{AccountID: f.acct, Domain: "bücher.example"}); err != nil {
				t.Fatal(err)
			}
			f.App.Imports.ChunkRows = 2 // imports of several chunks
			adminID := f.MustCaller(t, f.admin).UserID
			admin := f.h.get(userReq(routeGetUser, f.admin, adminID, nil)).User(t)
			r := &modelRun{t: t, f: f, rng: rand.New(rand.NewPCG(seed, 7)), m: &model{
				purchased: map[licadmin.Tier]int64{licadmin.Eco: 2, licadmin.Pro: 1},
				assigned:  map[licadmin.Tier]int64{},
				users:     map[string]*mUser{},
				emails:    map[string]string{f.admin: adminID},
				admin:     mUser{id: adminID, email: admin.Email, first: admin.FirstName, last: admin.LastName},
			}}
			total := 0
			for _, op := range modelOps {
				total += op.weight
			}
			for step := range 60 {
				n := r.rng.IntN(total)
				for _, op := range modelOps {
					if n -= op.weight; n < 0 {
						t.Logf("step %d: %s", step, op.name)
						op.run(r)
						break
					}
				}
				r.check(step)
			}
			f.Invariants(t)
		})
	}
}

// send sends req through h with a fresh Idempotency-Key; one time in five
// the client loses the answer and sends the request again with the same
// key, which must answer the same.
func (r *modelRun) send(h func(apitest.Request) *apitest.Response, req apitest.Request) *apitest.Response {
	r.seq++
	req.Headers = map[string]string{"Idempotency-Key": fmt.Sprintf("model-%d", r.seq)}
	first := h(req)
	if first.StatusCode < 500 && r.rng.IntN(5) == 0 {
		again := h(req)
		if req.Email == "" && first.StatusCode >= 400 {
			// A public route remembers no refusal (anyone could fill the
			// table with them): the retry is answered afresh, with the
			// same status and code but its own request id.
			var p1, p2 apigw.Problem
			first.Decode(r.t, &p1)
			again.Decode(r.t, &p2)
			if again.StatusCode != first.StatusCode || p1.Code != p2.Code {
				r.t.Fatalf("%s: a retry with the same key answered %d %s, first %d %s", req.Route, again.StatusCode, again.Body, first.StatusCode, first.Body)
			}
			return first
		}
		if again.StatusCode != first.StatusCode || again.Body != first.Body {
			r.t.Fatalf("%s: a retry with the same key answered %d %s, first %d %s", req.Route, again.StatusCode, again.Body, first.StatusCode, first.Body)
		}
	}
	return first
}

// want fails unless resp has status and, for a problem, code.
func (r *modelRun) want(resp *apitest.Response, status int, code string) {
	r.t.Helper()
	if code != "" {
		resp.WantProblem(r.t, status, code)
		return
	}
	resp.Want(r.t, status)
}

func (r *modelRun) tier() licadmin.Tier { return licadmin.Tiers[r.rng.IntN(len(licadmin.Tiers))] }

// user returns a random candidate id and its model (nil once deleted).
func (r *modelRun) user() (string, *mUser) {
	if len(r.users) == 0 {
		return "no-such-user", nil
	}
	id := r.users[r.rng.IntN(len(r.users))]
	return id, r.m.users[id]
}

func (r *modelRun) assign() {
	tier := r.tier()
	id, u := r.user()
	resp := r.send(r.f.h.assign, userReq(routeAssign, r.f.admin, id, map[string]string{"tier": string(tier)}))
	switch {
	case u == nil:
		r.want(resp, http.StatusNotFound, licadmin.ENOTFOUND)
	case u.tier != "":
		r.want(resp, http.StatusConflict, licadmin.ELICENSEASSIGNED)
	case r.m.available(tier) == 0:
		r.want(resp, http.StatusConflict, licadmin.ENOLICENSE)
	default:
		r.want(resp, http.StatusOK, "")
		u.tier = tier
		r.m.assigned[tier]++
	}
}

func (r *modelRun) modify() {
	id, u := r.user()
	tier := r.tier()
	resp := r.send(r.f.h.modify, userReq(routeModify, r.f.admin, id, map[string]string{"tier": string(tier)}))
	switch {
	case u == nil:
		r.want(resp, http.StatusNotFound, licadmin.ENOTFOUND)
	case u.tier == "":
		r.want(resp, http.StatusConflict, licadmin.EUSERNOLICENSE)
	case u.tier == tier:
		r.want(resp, http.StatusOK, "")
	case r.m.available(tier) == 0:
		r.want(resp, http.StatusConflict, licadmin.ENOLICENSE)
	default:
		r.want(resp, http.StatusOK, "")
		r.m.assigned[u.tier]--
		r.m.assigned[tier]++
		u.tier = tier
	}
}

func (r *modelRun) remove() {
	id, u := r.user()
	resp := r.send(r.f.h.remove, userReq(routeRemove, r.f.admin, id, nil))
	switch {
	case u == nil:
		r.want(resp, http.StatusNotFound, licadmin.ENOTFOUND)
	case u.tier == "":
		r.want(resp, http.StatusConflict, licadmin.EUSERNOLICENSE)
	default:
		r.want(resp, http.StatusOK, "")
		r.m.assigned[u.tier]--
		u.tier, u.gen, u.logs = "", u.gen+1, 0
	}
}

func (r *modelRun) transfer() {
	fromID, from := r.user()
	toID, to := r.user()
	if fromID == toID {
		return
	}
	resp := r.send(r.f.h.transfer, userReq(routeTransfer, r.f.admin, fromID, map[string]string{"toUserId": toID}))
	switch {
	case from == nil || to == nil:
		r.want(resp, http.StatusNotFound, licadmin.ENOTFOUND)
	case from.tier == "":
		r.want(resp, http.StatusConflict, licadmin.EUSERNOLICENSE)
	case to.tier != "":
		r.want(resp, http.StatusConflict, licadmin.ETARGETHASLICENSE)
	default:
		r.want(resp, http.StatusOK, "")
		to.tier = from.tier
		from.tier, from.gen, from.logs = "", from.gen+1, 0
	}
}

func (r *modelRun) deleteFromPool() {
	tier, q := r.tier(), int64(1+r.rng.IntN(2))
	resp := r.send(r.f.h.del, apitest.Request{Route: routeDelete, Params: map[string]string{"tier": string(tier)},
		Query: map[string]string{"quantity": fmt.Sprint(q)}, Email: r.f.admin})
	if r.m.available(tier) < q {
		r.want(resp, http.StatusConflict, licadmin.ELICENSESINUSE)
		return
	}
	r.want(resp, http.StatusOK, "")
	r.m.purchased[tier] -= q
}

func (r *modelRun) addLicenses() {
	tier, q := r.tier(), int64(1+r.rng.IntN(2))
	r.f.MustLicenses(r.t, r.f.acct, tier, q)
	r.m.purchased[tier] += q
}

// email returns a random address among a few, in any of its spellings, so
// that claims collide across spellings.
func (r *modelRun) email() (raw, canonical string) {
	local := fmt.Sprintf("m%d", r.rng.IntN(6))
	switch r.rng.IntN(3) {
	case 0:
		return local + "@acme.test", local + "@acme.test"
	case 1:
		return strings.ToUpper(local) + "@BÜCHER.example", local + "@xn--bcher-kva.example"
	}
	return local + "@xn--bcher-kva.example", local + "@xn--bcher-kva.example"
}

func (r *modelRun) createUser() {
	raw, email := r.email()
	resp := r.send(r.f.h.create, apitest.Request{Route: routeUsers, Email: r.f.admin, Body: userBody(raw, "user")})
	if _, taken := r.m.emails[email]; taken {
		r.want(resp, http.StatusConflict, licadmin.EEMAILTAKEN)
		return
	}
	r.want(resp, http.StatusCreated, "")
	u := resp.User(r.t)
	r.m.users[u.ID] = &mUser{id: u.ID, email: email, first: "Grace", last: "Hopper"}
	r.m.emails[email] = u.ID
	r.users = append(r.users, u.ID)
}

func (r *modelRun) editEmail() {
	id, u := r.user()
	raw, email := r.email()
	resp := r.send(r.f.update, userReq(routeUpdateUser, r.f.admin, id, map[string]string{"email": raw}))
	owner, taken := r.m.emails[email]
	switch {
	case u == nil:
		r.want(resp, http.StatusNotFound, licadmin.ENOTFOUND)
	case taken && owner != id:
		r.want(resp, http.StatusConflict, licadmin.EEMAILTAKEN)
	default:
		r.want(resp, http.StatusOK, "")
		delete(r.m.emails, u.email)
		u.email = email
		r.m.emails[email] = id
	}
}

func (r *modelRun) deleteUser() {
	id, u := r.user()
	resp := r.send(r.f.deleteUser, userReq(routeDeleteUser, r.f.admin, id, nil))
	if u == nil {
		r.want(resp, http.StatusNotFound, licadmin.ENOTFOUND)
		return
	}
	r.want(resp, http.StatusNoContent, "")
	if u.tier != "" {
		r.m.assigned[u.tier]--
	}
	delete(r.m.emails, u.email)
	delete(r.m.users, id)
}

func (r *modelRun) usage() {
	_, u := r.user()
	if u == nil {
		return
	}
	// Timed now: an event timed before its user's last removal or
	// transfer belongs to the erased log and is dropped. The ingest
	// function reads its user afresh (what it remembers for a second
	// lags the model's steps by design, docs/design.md).
	r.f.outliveMemory()
	ingest(r.t, r.f.Env, event(r.f.acct, u.email, licadmin.EventSent, time.Now()))
	u.logs++
}

// activationLink mints a link for a user as its email's delivery does.
func (r *modelRun) activationLink() {
	_, u := r.user()
	if u == nil {
		return
	}
	link, err := r.f.App.Activation.Mint(context.Background(), &store.Outbox{ID: fmt.Sprintf("o%d", r.seq), UserID: u.id, AccountID: r.f.acct, Email: u.email, Language: "en"})
	if err != nil {
		r.t.Fatal(err)
	}
	_, tok, _ := strings.Cut(link.URL, "token=")
	r.m.tokens = append(r.m.tokens, &mToken{token: tok, userID: u.id, email: u.email})
}

func (r *modelRun) activate() {
	if len(r.m.tokens) == 0 {
		return
	}
	tok := r.m.tokens[r.rng.IntN(len(r.m.tokens))]
	resp := r.send(func(req apitest.Request) *apitest.Response { return apitest.Do(r.t, api.Activate(r.f.App), req) },
		apitest.Request{Route: "POST /v1/activations", Body: map[string]string{"token": tok.token}})
	u := r.m.users[tok.userID]
	if tok.used || u == nil || u.email != tok.email {
		r.want(resp, http.StatusGone, licadmin.ETOKENINVALID)
		return
	}
	r.want(resp, http.StatusOK, "")
	tok.used, u.active = true, true
}

// bulk sends a bulk change of one to three users, unknown or deleted ones
// among them: it applies to every user or to none, the first user that
// cannot take it answering, else a pool short of licenses.
func (r *modelRun) bulk() {
	action := []string{"assign", "modify", "remove"}[r.rng.IntN(3)]
	tier := r.tier()
	if action == "remove" && r.rng.IntN(2) == 0 {
		tier = "" // any tier
	}
	// Mostly users that can take the action, so that changes apply too.
	fit := r.users
	if r.rng.IntN(3) > 0 {
		fit = nil
		for _, id := range r.users {
			if u := r.m.users[id]; u != nil && (u.tier == "") == (action == "assign") {
				fit = append(fit, id)
			}
		}
	}
	var ids []string
	for range 1 + r.rng.IntN(3) {
		id := "no-such-user"
		if len(fit) > 0 {
			id = fit[r.rng.IntN(len(fit))]
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	resp := r.send(func(req apitest.Request) *apitest.Response { return apitest.Do(r.t, api.BulkLicenses(r.f.App), req) },
		apitest.Request{Route: routeBulk, Email: r.f.admin, Body: bulkBody(action, string(tier), ids...)})
	need := int64(0) // licenses of tier taken from the pool
	for _, id := range ids {
		u := r.m.users[id]
		code := ""
		switch {
		case u == nil:
			code = licadmin.ENOTFOUND
		case action == "assign" && u.tier != "":
			code = licadmin.ELICENSEASSIGNED
		case action != "assign" && u.tier == "", action == "remove" && tier != "" && u.tier != tier:
			code = licadmin.EUSERNOLICENSE
		case action != "remove" && u.tier != tier:
			need++
		}
		if code != "" {
			status := http.StatusConflict
			if code == licadmin.ENOTFOUND {
				status = http.StatusNotFound
			}
			r.want(resp, status, code)
			return
		}
	}
	if need > r.m.available(tier) {
		r.want(resp, http.StatusConflict, licadmin.ENOLICENSE)
		return
	}
	r.want(resp, http.StatusOK, "")
	for _, id := range ids {
		u := r.m.users[id]
		switch action {
		case "remove":
			r.m.assigned[u.tier]--
			u.tier, u.gen, u.logs = "", u.gen+1, 0
		default:
			if u.tier != "" {
				r.m.assigned[u.tier]--
			}
			r.m.assigned[tier]++
			u.tier = tier
		}
	}
}

// modelNames are the names imported users take: accents and case for the
// searches to fold.
var modelNames = []string{"Élodie", "Dörr", "Zoë", "JANVIER", "Jansen", "Straße", "Ølsen", "ada"}

// importRows imports a small CSV through the importer, in chunks of two
// rows: rows with and without a license, some with an email taken. Each
// row whose email is free creates a user, with its license while the pool
// has one of its tier and without one after (reported, and counted as
// unlicensed); the others are reported and counted as failed.
func (r *modelRun) importRows() {
	type row struct {
		email       string
		first, last string
		tier        licadmin.Tier
	}
	var rows []row
	var body strings.Builder
	body.WriteString("email,first_name,last_name,language,license\n")
	seen := map[string]bool{}
	for range 1 + r.rng.IntN(4) {
		raw, email := r.email()
		if seen[email] {
			continue // not a duplicate in the file: reported otherwise
		}
		seen[email] = true
		w := row{email: email, first: modelNames[r.rng.IntN(len(modelNames))], last: modelNames[r.rng.IntN(len(modelNames))]}
		if r.rng.IntN(3) > 0 {
			w.tier = r.tier()
		}
		rows = append(rows, w)
		fmt.Fprintf(&body, "%s,%s,%s,en,%s\n", raw, w.first, w.last, w.tier)
	}
	resp := apitest.Do(r.t, api.CreateImport(r.f.App), apitest.Request{Route: routeImports, Email: r.f.admin, Body: map[string]bool{"dryRun": false}})
	resp.Want(r.t, http.StatusCreated)
	var up importer.Upload
	resp.Decode(r.t, &up)
	put(r.t, &up, body.String())
	r.f.RunImports(r.t, r.f.S3.Uploads(r.t, 1)...)
	resp = apitest.Do(r.t, api.GetImport(r.f.App), apitest.Request{Route: routeImport, Params: map[string]string{"importId": up.ImportID}, Email: r.f.admin})
	resp.Want(r.t, http.StatusOK)
	var imp licadmin.Import
	resp.Decode(r.t, &imp)

	ids := map[string]string{} // email -> id of the users the import created
	for _, it := range r.f.Scan(r.t) {
		if u := store.UserFromImage(it); u != nil && avString(it["sk"]) == "USER" && u.AccountID == r.f.acct && r.m.emails[u.Email] == "" {
			ids[u.Email] = u.ID
		}
	}
	var created, failed, unlicensed int64
	for _, w := range rows {
		if _, taken := r.m.emails[w.email]; taken {
			failed++
			continue
		}
		u := &mUser{id: ids[w.email], email: w.email, first: w.first, last: w.last}
		if u.id == "" {
			r.t.Fatalf("import %s: no user for %s", imp.ID, w.email)
		}
		created++
		switch {
		case w.tier == "":
		case r.m.available(w.tier) == 0:
			unlicensed++ // reported, and created without a license
		default:
			u.tier = w.tier
			r.m.assigned[w.tier]++
		}
		r.m.users[u.id] = u
		r.m.emails[w.email] = u.id
		r.users = append(r.users, u.id)
	}
	if imp.Status != licadmin.ImportDone || imp.Rows != int64(len(rows)) || imp.Created != created || imp.Failed != failed || imp.Unlicensed != unlicensed {
		r.t.Fatalf("import %s rows %d created %d failed %d unlicensed %d, model %d %d %d %d",
			imp.Status, imp.Rows, imp.Created, imp.Failed, imp.Unlicensed, len(rows), created, failed, unlicensed)
	}
}

// checkSearch checks the search index entries against the users once the
// stream has delivered every change, then searches for a few users by a
// prefix of their email, first or last name, typed in another case, and
// compares the users found with those of the model whose folded email or
// name starts with it.
func (r *modelRun) checkSearch(step int) {
	t := r.t
	t.Helper()
	r.f.DeliverUsageStream(t)
	r.f.SearchIndexInvariant(t)
	all := []*mUser{&r.m.admin}
	for _, u := range r.m.users {
		all = append(all, u)
	}
	// In a fixed order, so that a seed picks the same users again.
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	for range 2 {
		u := all[r.rng.IntN(len(all))]
		field := []string{u.email, u.first, u.last}[r.rng.IntN(3)]
		runes := []rune(field)
		q := string(runes[:1+r.rng.IntN(len(runes))])
		if r.rng.IntN(2) == 0 {
			q = strings.ToUpper(q)
		}
		key := licadmin.SearchKey(q)
		var want []string // emails: one user each
		for _, m := range all {
			for _, text := range []string{m.email, m.first, m.last} {
				if strings.HasPrefix(licadmin.SearchKey(text), key) {
					want = append(want, m.email)
					break
				}
			}
		}
		got := (&searchFixture{xfixture: r.f}).search(t, q, nil)
		sort.Strings(want)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: q=%q found %v, model %v", step, q, got, want)
		}
	}
}

// check compares the table with the model.
func (r *modelRun) check(step int) {
	t, m := r.t, r.m
	t.Helper()
	p := r.f.pool(t)
	for _, tier := range licadmin.Tiers {
		got := p.Tier(tier)
		if got.Purchased != m.purchased[tier] || got.Assigned != m.assigned[tier] || got.Available != m.available(tier) {
			t.Fatalf("step %d: pool %s = %+v, model purchased %d assigned %d", step, tier, got, m.purchased[tier], m.assigned[tier])
		}
	}
	var claims []string
	users := map[string]*licadmin.User{}
	for _, it := range r.f.Scan(t) {
		pk := avString(it["pk"])
		if strings.HasPrefix(pk, "EMAIL#") && avString(it["accountId"]) == r.f.acct {
			claims = append(claims, strings.TrimPrefix(pk, "EMAIL#"))
		}
		if u := store.UserFromImage(it); u != nil && avString(it["sk"]) == "USER" && u.AccountID == r.f.acct {
			users[u.ID] = u
		}
	}
	var want []string
	for e := range m.emails {
		want = append(want, e)
	}
	sort.Strings(claims)
	sort.Strings(want)
	if !slices.Equal(claims, want) {
		t.Fatalf("step %d: email claims %v, model %v", step, claims, want)
	}
	if len(users) != len(m.users)+1 { // the admin
		t.Fatalf("step %d: %d users in the table, model %d + the admin", step, len(users), len(m.users))
	}
	for id, mu := range m.users {
		u := users[id]
		if u == nil {
			t.Fatalf("step %d: user %s missing", step, id)
		}
		var tier licadmin.Tier
		if u.License != nil {
			tier = u.License.Tier
		}
		if u.FirstName != mu.first || u.LastName != mu.last {
			t.Fatalf("step %d: user %s named %s %s, model %s %s", step, id, u.FirstName, u.LastName, mu.first, mu.last)
		}
		if tier != mu.tier || u.Email != mu.email || u.LogGeneration != mu.gen || (u.Status == licadmin.StatusActive) != mu.active {
			t.Fatalf("step %d: user %s = tier %q email %s gen %d status %s; model tier %q email %s gen %d active %v",
				step, id, tier, u.Email, u.LogGeneration, u.Status, mu.tier, mu.email, mu.gen, mu.active)
		}
		if mu.logs > 0 || r.rng.IntN(4) == 0 {
			if n := countItems(t, r.f.Env, fmt.Sprintf("LOG#%s#%d", id, mu.gen), ""); n != mu.logs {
				t.Fatalf("step %d: user %s has %d log entries in generation %d, model %d", step, id, n, mu.gen, mu.logs)
			}
		}
	}
	r.checkSearch(step)
}
