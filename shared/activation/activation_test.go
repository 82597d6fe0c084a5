package activation_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/activation"
	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

func TestMain(m *testing.M) { os.Exit(apitest.RunTests(m)) }

// fixture is an account on a fresh table whose email goes to the SES
// emulator, with its own domain so that its mail is told apart, and a
// clock the tests move.
type fixture struct {
	*apitest.Env
	mail   *apitest.Mail
	acct   string
	admin  string
	domain string
	clock  *apitest.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := apitest.New(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	f := &fixture{Env: env, domain: "a" + hex.EncodeToString(b) + ".test", clock: apitest.NewClock(time.Now().UTC())}
	f.mail = env.WithEmail(t)
	env.App.Activation.Now = f.clock.Now
	f.admin = "admin@" + f.domain
	f.acct, _ = env.MustAccount(t, "Acme", f.admin)
	return f
}

func (f *fixture) user(t *testing.T, name, lang string) (id, email string) {
	t.Helper()
	email = name + "@" + f.domain
	r := apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: "POST /v1/users", Email: f.admin, Body: map[string]string{
		"email": email, "firstName": name, "lastName": "Test", "language": lang, "role": "user"}})
	r.Want(t, http.StatusCreated)
	return r.User(t).ID, email
}

func (f *fixture) sendLink(t *testing.T, caller, userID string, headers map[string]string) *apitest.Response {
	t.Helper()
	return apitest.Do(t, api.SendActivationEmail(f.App), apitest.Request{Route: "POST /v1/users/{userId}/activation-email",
		Params: map[string]string{"userId": userID}, Email: caller, Headers: headers})
}

func (f *fixture) page(t *testing.T, token string) *apitest.Response {
	t.Helper()
	return f.pageIn(t, token, "")
}

// pageIn loads the page for token with an Accept-Language header.
func (f *fixture) pageIn(t *testing.T, token, acceptLanguage string) *apitest.Response {
	t.Helper()
	var h map[string]string
	if acceptLanguage != "" {
		h = map[string]string{"Accept-Language": acceptLanguage}
	}
	return apitest.Do(t, api.ActivationPage(f.App), apitest.Request{Route: "GET /activate", Query: map[string]string{"token": token}, Headers: h})
}

func (f *fixture) activate(t *testing.T, body any) *apitest.Response {
	t.Helper()
	return apitest.Do(t, api.Activate(f.App), apitest.Request{Route: "POST /v1/activations", Body: body})
}

func (f *fixture) status(t *testing.T, userID string) licadmin.Status {
	t.Helper()
	return apitest.Do(t, api.GetUser(f.App), apitest.Request{Route: "GET /v1/users/{userId}", Params: map[string]string{"userId": userID}, Email: f.admin}).User(t).Status
}

var linkRE = regexp.MustCompile(regexp.QuoteMeta(apitest.PublicBaseURL) + `/activate\?token=([A-Za-z0-9_-]+)`)

// link sends an activation email to userID, delivers it, and returns the
// token of the newest email's link.
func (f *fixture) link(t *testing.T, userID, email string) string {
	t.Helper()
	f.sendLink(t, f.admin, userID, nil).Want(t, http.StatusAccepted)
	f.mail.Drain(t)
	got := f.mail.To(t, email)
	if len(got) == 0 {
		t.Fatalf("no email to %s", email)
	}
	m := linkRE.FindStringSubmatch(got[len(got)-1].Body.Text)
	if m == nil {
		t.Fatalf("no activation link in:\n%s", got[len(got)-1].Body.Text)
	}
	return m[1]
}

// state renders every item of the table, sorted, to compare snapshots.
func (f *fixture) state(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, it := range f.Scan(t) {
		lines = append(lines, apitest.CanonItem(it))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestActivationFlow ensures the whole activation: 202; the email in the
// user's language from the configured sender with a link built from the
// public base URL; only the token's SHA-256 in the table; the page in the
// browser's language with its security headers, loading it changing nothing;
// the POST activating the user once, with an audit record; the used link
// answering 410 and its page offered in both languages.
func TestActivationFlow(t *testing.T) {
	f := newFixture(t)
	u, email := f.user(t, "Chloé", "fr")
	r := f.sendLink(t, f.admin, u, nil)
	r.Want(t, http.StatusAccepted)
	if r.Body != `{"userId":"`+u+`","status":"queued"}` {
		t.Fatalf("202 body %s", r.Body)
	}
	f.mail.Drain(t)
	got := f.mail.To(t, email)
	if len(got) != 1 {
		t.Fatalf("%d emails, want 1", len(got))
	}
	m := got[0]
	if m.From != apitest.SenderEmail || m.Subject != "Activez votre compte License Admin" || !strings.Contains(m.Body.Text, "Bonjour Chloé") {
		t.Fatalf("email from %q subject %q:\n%s", m.From, m.Subject, m.Body.Text)
	}
	token := linkRE.FindStringSubmatch(m.Body.Text)[1]
	if !strings.Contains(m.Body.HTML, `href="`+apitest.PublicBaseURL+`/activate?token=`+token+`"`) {
		t.Fatalf("the HTML part lacks the link:\n%s", m.Body.HTML)
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != activation.TokenBytes {
		t.Fatalf("token %q: %d bytes, %v", token, len(raw), err)
	}

	// Rule 7: the table holds the hash only.
	sum := sha256.Sum256(raw)
	before := f.state(t)
	for _, leak := range []string{token, hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), string(raw)} {
		if strings.Contains(before, leak) {
			t.Fatalf("the table holds the token (%q)", leak)
		}
	}
	if !strings.Contains(before, "pk=S:TOKEN#"+hex.EncodeToString(sum[:])+";") {
		t.Fatal("no token item keyed by the token's SHA-256")
	}

	// The page changes nothing, however often it is loaded.
	for range 3 {
		p := f.pageIn(t, token, "fr-CA,fr;q=0.9,en;q=0.5")
		p.Want(t, http.StatusOK)
		if !strings.Contains(p.Body, `<html lang="fr">`) || !strings.Contains(p.Body, "Activer mon compte") || strings.Contains(p.Body, "Activate my account") {
			t.Fatalf("page:\n%s", p.Body)
		}
		for k, want := range map[string]string{
			"Content-Type": "text/html; charset=utf-8", "Referrer-Policy": "no-referrer",
			"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Security-Policy": activation.PageCSP,
		} {
			if p.Headers[k] != want {
				t.Fatalf("header %s = %q, want %q", k, p.Headers[k], want)
			}
		}
	}
	if after := f.state(t); after != before {
		t.Fatalf("loading the page changed the table:\nbefore %s\nafter  %s", before, after)
	}
	if s := f.status(t, u); s != licadmin.StatusPending {
		t.Fatalf("status %q after loading the page", s)
	}

	a := f.activate(t, map[string]string{"token": token})
	a.Want(t, http.StatusOK)
	if a.Body != `{"status":"active"}` || a.Headers["Cache-Control"] != "no-store" {
		t.Fatalf("activation answered %s %v", a.Body, a.Headers)
	}
	if s := f.status(t, u); s != licadmin.StatusActive {
		t.Fatalf("status %q after activation", s)
	}
	recs, err := f.App.Store.AuditLog(context.Background(), f.acct, 100)
	if err != nil {
		t.Fatal(err)
	}
	var activations []store.Audit
	for _, r := range recs {
		if r.Action == store.ActionUserActivate {
			activations = append(activations, r)
		}
	}
	if len(activations) != 1 || activations[0].Target != u || activations[0].Actor != strings.ToLower(email) || activations[0].RequestID != a.RequestID || activations[0].SourceIP == "" {
		t.Fatalf("activation audit records %+v, want one by the user with the request's id and IP", activations)
	}

	// Single use.
	f.activate(t, map[string]string{"token": token}).WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
	p := f.page(t, token)
	p.Want(t, http.StatusOK)
	if !strings.Contains(p.Body, "Activate my account / Activer mon compte") {
		t.Fatalf("a used token's page is not the neutral bilingual one:\n%s", p.Body)
	}
	f.Invariants(t)
}

// TestActivationIdempotencyKey ensures a retried activation whose answer
// was lost gets it again with the same Idempotency-Key (scoped by the
// token: the same key with another token is another request), and 410
// without it.
func TestActivationIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	u, email := f.user(t, "ida", "en")
	v, vEmail := f.user(t, "jay", "en")
	token, other := f.link(t, u, email), f.link(t, v, vEmail)
	req := func(tok string) apitest.Request {
		return apitest.Request{Route: "POST /v1/activations", Body: map[string]string{"token": tok}, Headers: map[string]string{"Idempotency-Key": "retry-1"}}
	}
	first := apitest.Do(t, api.Activate(f.App), req(token))
	first.Want(t, http.StatusOK)
	again := apitest.Do(t, api.Activate(f.App), req(token))
	again.Want(t, http.StatusOK)
	if again.Headers["Idempotent-Replayed"] != "true" || again.Body != first.Body || again.Headers["Cache-Control"] != "no-store" {
		t.Fatalf("retry answered %v %s, want the first answer replayed", again.Headers, again.Body)
	}
	f.activate(t, map[string]string{"token": token}).WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
	apitest.Do(t, api.Activate(f.App), req(other)).Want(t, http.StatusOK)
	if f.status(t, u) != licadmin.StatusActive || f.status(t, v) != licadmin.StatusActive {
		t.Fatal("both users should be active")
	}
}

// TestActivationRateLimit ensures one activation email per user per 60 s,
// enforced by the write: 429 rate_limited within the minute (not
// remembered under an Idempotency-Key), 202 after it, other users
// unaffected, a replayed key answering the first 202.
func TestActivationRateLimit(t *testing.T) {
	f := newFixture(t)
	u, _ := f.user(t, "dora", "en")
	v, _ := f.user(t, "eli", "en")
	f.sendLink(t, f.admin, u, map[string]string{"Idempotency-Key": "k1"}).Want(t, http.StatusAccepted)
	replay := f.sendLink(t, f.admin, u, map[string]string{"Idempotency-Key": "k1"})
	replay.Want(t, http.StatusAccepted)
	if replay.Headers["Idempotent-Replayed"] != "true" {
		t.Fatalf("the same key was not replayed: %v", replay.Headers)
	}
	f.clock.Advance(59 * time.Second)
	p := f.sendLink(t, f.admin, u, map[string]string{"Idempotency-Key": "k2"}).WantProblem(t, http.StatusTooManyRequests, licadmin.ERATELIMITED)
	if !strings.Contains(p.Detail, "retry in 1 seconds") {
		t.Fatalf("detail %q", p.Detail)
	}
	f.sendLink(t, f.admin, v, nil).Want(t, http.StatusAccepted)
	f.clock.Advance(time.Second)
	f.sendLink(t, f.admin, u, map[string]string{"Idempotency-Key": "k2"}).Want(t, http.StatusAccepted)
	f.sendLink(t, f.admin, u, nil).WantProblem(t, http.StatusTooManyRequests, licadmin.ERATELIMITED)

	var queued int
	for _, it := range f.Scan(t) {
		if o := store.OutboxFromImage(it); o != nil && o.Kind == licadmin.EmailActivation {
			queued++
		}
	}
	if queued != 3 {
		t.Fatalf("%d activation emails queued, want 3 (u twice, v once)", queued)
	}
}

// TestActivationAccess ensures only admins send links, to users of their
// account: 403 for a plain user, 401 without a token, 404 for an unknown
// user and for another account's user (nothing queued).
func TestActivationAccess(t *testing.T) {
	f := newFixture(t)
	u, plain := f.user(t, "fred", "en")
	_, otherAdminID := f.MustAccount(t, "Globex", "boss@other-"+f.domain)
	f.sendLink(t, plain, u, nil).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
	f.sendLink(t, "", u, nil).WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
	f.sendLink(t, f.admin, "01JZZZZZZZZZZZZZZZZZZZZZZZ", nil).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	f.sendLink(t, f.admin, otherAdminID, nil).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	for _, it := range f.Scan(t) {
		if o := store.OutboxFromImage(it); o != nil && o.Kind == licadmin.EmailActivation {
			t.Fatalf("a refused request queued %+v", o)
		}
	}
}

// TestActivationSingleUseUnderConcurrency ensures that 20 concurrent POSTs
// of one token activate once: exactly one 200, nineteen 410, one audit
// record.
func TestActivationSingleUseUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	u, email := f.user(t, "gina", "en")
	token := f.link(t, u, email)
	n := len(f.AuditLog(t, f.acct))
	const workers = 20
	answers := make([]*apitest.Response, workers)
	apitest.Concurrently(workers, func(i int) { answers[i] = f.activate(t, map[string]string{"token": token}) })
	var ok, gone int
	for _, a := range answers {
		switch a.StatusCode {
		case http.StatusOK:
			ok++
		case http.StatusGone:
			a.WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
			gone++
		default:
			t.Fatalf("answer %d %s", a.StatusCode, a.Body)
		}
	}
	if ok != 1 || gone != workers-1 {
		t.Fatalf("%d answers 200 and %d answer 410, want 1 and %d", ok, gone, workers-1)
	}
	recs, err := f.App.Store.AuditLog(context.Background(), f.acct, 100)
	if err != nil || len(recs) != n+1 {
		t.Fatalf("%d audit records for one activation (%v)", len(recs)-n, err)
	}
	if f.status(t, u) != licadmin.StatusActive {
		t.Fatal("the user is not active")
	}
}

// TestActivationInvalidTokens ensures one answer, 410 token_invalid, for an
// expired, unknown or malformed token, 400 for a missing one, and that an
// expired token leaves the user pending.
func TestActivationInvalidTokens(t *testing.T) {
	f := newFixture(t)
	u, email := f.user(t, "hana", "en")
	token := f.link(t, u, email)
	f.clock.Advance(activation.DefaultTTL + time.Second)
	f.activate(t, map[string]string{"token": token}).WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
	if f.status(t, u) != licadmin.StatusPending {
		t.Fatal("an expired token activated the user")
	}
	unknown, _, _ := activation.NewToken()
	for _, tok := range []string{unknown, "not-a-token", token + "A", strings.Repeat("A", 43)} {
		f.activate(t, map[string]string{"token": tok}).WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
	}
	for _, body := range []any{map[string]string{}, map[string]string{"token": ""}, "not json", map[string]any{"token": 3}} {
		f.activate(t, body).WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
	}
	// An expired token's page is the browser's (here both languages); a
	// page without a token too.
	for _, tok := range []string{token, ""} {
		p := f.page(t, tok)
		p.Want(t, http.StatusOK)
		if !strings.Contains(p.Body, `<html lang="en">`) || !strings.Contains(p.Body, "Activer mon compte") {
			t.Fatalf("page for %q:\n%s", tok, p.Body)
		}
	}
}

// TestActivationPageLanguage ensures the page is in its user's language
// while the link works, whatever the browser asks for, and changes
// nothing; that a used, expired or unknown token gets the same page as
// the others (but for the token it carries), in the browser's language,
// or both when it prefers neither; and that the page is served in the
// browser's language when the token cannot be read. (A malformed token,
// which its form alone gives away, is left out of the page.)
func TestActivationPageLanguage(t *testing.T) {
	f := newFixture(t)
	u, email := f.user(t, "ines", "fr")
	v, vEmail := f.user(t, "jon", "en")
	w, wEmail := f.user(t, "kai", "en")
	x, xEmail := f.user(t, "lou", "en")
	french, used, expired, english := f.link(t, u, email), f.link(t, v, vEmail), f.link(t, w, wEmail), f.link(t, x, xEmail)
	f.activate(t, map[string]string{"token": used}).Want(t, http.StatusOK)
	unknown, _, _ := activation.NewToken()
	only := func(t *testing.T, p *apitest.Response, lang string) {
		t.Helper()
		p.Want(t, http.StatusOK)
		button := map[string]string{"fr": "Activer mon compte", "en": "Activate my account"}
		for l, b := range button {
			if strings.Contains(p.Body, b) != (l == lang) {
				t.Fatalf("page has %q: %v, want only the %s page:\n%s", b, strings.Contains(p.Body, b), lang, p.Body)
			}
		}
		if !strings.Contains(p.Body, `<html lang="`+lang+`">`) {
			t.Fatalf("page not marked %s:\n%s", lang, p.Body)
		}
	}
	for _, accept := range []string{"", "fr", "en-GB,en;q=0.8", "de"} {
		only(t, f.pageIn(t, french, accept), "fr")
		only(t, f.pageIn(t, english, accept), "en")
		var first string
		for _, tok := range []string{used, unknown, expired} {
			if tok == expired {
				f.clock.Advance(activation.DefaultTTL + time.Second)
			}
			p := f.pageIn(t, tok, accept)
			if tok == expired {
				f.clock.Advance(-activation.DefaultTTL - time.Second)
			}
			p.Want(t, http.StatusOK)
			switch {
			case accept == "fr":
				only(t, p, "fr")
			case strings.HasPrefix(accept, "en"):
				only(t, p, "en")
			case !strings.Contains(p.Body, `<html lang="en">`) || !strings.Contains(p.Body, "Activer mon compte") || !strings.Contains(p.Body, "Activate my account"):
				t.Fatalf("Accept-Language %q, token %q: want both languages:\n%s", accept, tok, p.Body)
			}
			body := strings.ReplaceAll(p.Body, tok, "TOKEN")
			if first == "" {
				first = body
			} else if body != first {
				t.Fatalf("Accept-Language %q: the page for %q differs from another unusable token's:\n%s\n---\n%s", accept, tok, body, first)
			}
		}
	}
	f.activate(t, map[string]string{"token": french}).Want(t, http.StatusOK)

	// The token's item cannot be read: the browser's page, never an error.
	broken, _ := apitest.Faults(func(op string, _ int) apitest.Fault {
		if op == "GetItem" {
			return apitest.Fail
		}
		return apitest.NoFault
	})
	g := apitest.New(t, broken)
	only(t, apitest.Do(t, api.ActivationPage(g.App), apitest.Request{Route: "GET /activate", Query: map[string]string{"token": english},
		Headers: map[string]string{"Accept-Language": "fr"}}), "fr")
}

// TestEmailChangeRevokesLinks ensures a link sent before a user's email
// changed no longer works (410, the user stays pending), while a link sent
// to the new address does.
func TestEmailChangeRevokesLinks(t *testing.T) {
	f := newFixture(t)
	u, email := f.user(t, "lea", "en")
	old := f.link(t, u, email)
	f.clock.Advance(time.Minute) // past the activation email's rate limit
	apitest.Do(t, api.UpdateUser(f.App), apitest.Request{Route: "PATCH /v1/users/{userId}", Params: map[string]string{"userId": u},
		Email: f.admin, Body: map[string]string{"email": "lea.new@" + f.domain}}).Want(t, http.StatusOK)
	f.activate(t, map[string]string{"token": old}).WantProblem(t, http.StatusGone, licadmin.ETOKENINVALID)
	if f.status(t, u) != licadmin.StatusPending {
		t.Fatal("a link sent to the former address activated the user")
	}
	fresh := f.link(t, u, "lea.new@"+f.domain)
	f.activate(t, map[string]string{"token": fresh}).Want(t, http.StatusOK)
	f.Invariants(t)
}

// TestActivationPageIsSelfContained ensures the page loads nothing and
// runs only the hashed script: its inline style and script match the CSP
// hashes, it has no other script, style or external resource, and the
// token in the page is only the one of the URL, escaped.
func TestActivationPageIsSelfContained(t *testing.T) {
	page, err := activation.RenderPage(`"><script>alert(1)</script>`, []string{"en"})
	if err != nil {
		t.Fatal(err)
	}
	body := string(page)
	if strings.Count(body, "<script") != 1 || strings.Count(body, "<style") != 1 || strings.Contains(body, "alert(1)") {
		t.Fatalf("page:\n%s", body)
	}
	for _, re := range []string{`<script>([\s\S]*?)</script>`, `<style>([\s\S]*?)</style>`} {
		m := regexp.MustCompile(re).FindSubmatch(page)
		sum := sha256.Sum256(m[1])
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(activation.PageCSP, h) {
			t.Fatalf("CSP %q lacks %s", activation.PageCSP, h)
		}
	}
	for _, ext := range []string{"src=", "href=", "@import", "url("} {
		if bytes.Contains(page, []byte(ext)) {
			t.Fatalf("the page refers to an external resource (%s)", ext)
		}
	}
	for _, d := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"} {
		if !strings.Contains(activation.PageCSP, d) {
			t.Fatalf("CSP lacks %s", d)
		}
	}
	tok, _, _ := activation.NewToken()
	page, _ = activation.RenderPage(tok, []string{"fr"})
	if !bytes.Contains(page, []byte(`data-token="`+tok+`"`)) {
		t.Fatal("the page does not carry a well-formed token")
	}
}
