package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/store"
)

const (
	routeDomains      = "POST /v1/domains"
	routeVerifyDomain = "POST /v1/domains/{domain}/verify"
	routeListDomains  = "GET /v1/domains"
	routeDeleteDomain = "DELETE /v1/domains/{domain}"
)

// txtValue is the shape of a TXT record value: the prefix and 32 random
// base32 characters (160 bits).
var txtValue = regexp.MustCompile(`^license-admin-verification=[a-z2-7]{32}$`)

// domainReq builds a request on a route with a {domain} parameter.
func domainReq(route, caller, domain string) apitest.Request {
	return apitest.Request{Route: route, Params: map[string]string{"domain": domain}, Email: caller}
}

// domainOf decodes a domain answer.
func domainOf(t *testing.T, r *apitest.Response) *licadmin.Domain {
	t.Helper()
	r.Want(t, http.StatusOK, http.StatusCreated)
	var d licadmin.Domain
	r.Decode(t, &d)
	return &d
}

// dnsFixture is the fixture with a DNS server that domain verification asks.
type dnsFixture struct {
	*xfixture
	dns *dnsServer
}

func newDNSFixture(t *testing.T) *dnsFixture {
	t.Helper()
	f := &dnsFixture{xfixture: newXFixture(t), dns: newDNSServer(t)}
	useDNS(f.Env, f.dns.Addr, 2*time.Second)
	return f
}

// request asks for domain as caller and returns the answer's entry.
func (f *xfixture) request(t *testing.T, caller, domain string) *licadmin.Domain {
	t.Helper()
	return domainOf(t, f.requestDomain(apitest.Request{Route: routeDomains, Email: caller, Body: map[string]string{"domain": domain}}))
}

// approve requests domain for caller's account, publishes its TXT record
// and verifies it.
func (f *dnsFixture) approve(t *testing.T, caller, domain string) *licadmin.Domain {
	t.Helper()
	d := f.request(t, caller, domain)
	f.dns.set(domain, *d.TXTRecord)
	return domainOf(t, f.verify(domainReq(routeVerifyDomain, caller, domain)))
}

// claimHolder returns the account whose global claim holds domain, "" for
// none.
func claimHolder(t *testing.T, env *apitest.Env, domain string) string {
	t.Helper()
	for _, it := range env.Scan(t) {
		if avString(it["pk"]) == "DOMAIN#"+domain {
			return avString(it["accountId"])
		}
	}
	return ""
}

// TestCreateDomain ensures POST /v1/domains: 201 pending with a random TXT
// record value per account and domain, the name normalised (trimmed,
// lower-cased, no trailing dot, punycode); the same request again answers
// the same entry with 200; invalid names answer 422 invalid_domain, a
// domain approved for another account and public webmail (which no
// account can claim) 409 domain_claimed, bad bodies 400; refusals write
// nothing.
func TestCreateDomain(t *testing.T) {
	f := newXFixture(t)
	cases := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"  Example.ORG. ", "example.org"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"ＢÜＣＨＥＲ.example.", "xn--bcher-kva.example"},
		{"xn--mnchen-3ya.example", "xn--mnchen-3ya.example"},
		{"mail.eu.example.co.uk", "mail.eu.example.co.uk"},
		{"a-b.example", "a-b.example"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			n := len(f.Env.AuditLog(t, f.acct))
			r := f.requestDomain(apitest.Request{Route: routeDomains, Email: f.admin, Body: map[string]string{"domain": c.in}})
			if c.in == "ＢÜＣＨＥＲ.example." {
				// The same domain as "bücher.example": its entry again.
				r.Want(t, http.StatusOK)
				return
			}
			r.Want(t, http.StatusCreated)
			var raw map[string]json.RawMessage
			r.Decode(t, &raw)
			keys := slices.Sorted(maps.Keys(raw))
			if !slices.Equal(keys, []string{"approvedAt", "createdAt", "domain", "status", "txtRecord"}) || string(raw["approvedAt"]) != "null" {
				t.Fatalf("domain fields %s", r.Body)
			}
			d := domainOf(t, r)
			if d.Domain != c.want || d.Status != licadmin.DomainPending || d.TXTRecord == nil || !txtValue.MatchString(*d.TXTRecord) || seen[*d.TXTRecord] {
				t.Fatalf("answer %s, want %s pending with a new TXT record value", r.Body, c.want)
			}
			seen[*d.TXTRecord] = true
			if loc := r.Headers["Location"]; loc != "/v1/domains/"+c.want {
				t.Fatalf("Location %q", loc)
			}
			recs := f.Env.AuditLog(t, f.acct)
			if len(recs) != n+1 || recs[0].Action != store.ActionDomainRequest || recs[0].Target != c.want || recs[0].Actor != f.admin || recs[0].RequestID != r.RequestID {
				t.Fatalf("audit %+v", recs[0])
			}
		})
	}

	t.Run("again", func(t *testing.T) {
		first := f.request(t, f.admin, "again.example")
		n := len(f.Env.AuditLog(t, f.acct))
		for _, in := range []string{"again.example", "AGAIN.example."} {
			r := f.requestDomain(apitest.Request{Route: routeDomains, Email: f.admin, Body: map[string]string{"domain": in}})
			r.Want(t, http.StatusOK)
			if d := domainOf(t, r); *d.TXTRecord != *first.TXTRecord || d.Status != licadmin.DomainPending {
				t.Fatalf("again: %+v, want the first entry", d)
			}
		}
		// The account's own approved domain answers as it is.
		if d := f.request(t, f.admin, "acme.test"); d.Status != licadmin.DomainApproved || d.TXTRecord != nil || d.ApprovedAt == nil {
			t.Fatalf("own approved domain: %+v", d)
		}
		if got := len(f.Env.AuditLog(t, f.acct)); got != n {
			t.Fatalf("repeated requests wrote %d audit records", got-n)
		}
		// Another account's request of a pending domain is its own, with
		// its own value.
		other := f.request(t, f.other, "again.example")
		if other.Status != licadmin.DomainPending || *other.TXTRecord == *first.TXTRecord {
			t.Fatalf("another account's request %+v shares the value %s", other, *first.TXTRecord)
		}
	})

	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	refused := []struct {
		name   string
		body   any
		status int
		code   string
		fields []string
	}{
		{"empty name", `{"domain":""}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"blank name", `{"domain":"  . "}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"single label", `{"domain":"localhost"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"IPv4 address", `{"domain":"192.0.2.1"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"IPv6 address", `{"domain":"[2001:db8::1]"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"empty label", `{"domain":"a..example"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"leading dot", `{"domain":".example.com"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"leading hyphen", `{"domain":"-x.example"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"underscore", `{"domain":"x_y.example"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"space", `{"domain":"exa mple.com"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"URL", `{"domain":"https://example.com"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"email address", `{"domain":"admin@example.com"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"wildcard", `{"domain":"*.example.com"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"bad punycode", `{"domain":"xn--zz.example"}`, http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"label of 64", fmt.Sprintf(`{"domain":"%s.example"}`, strings.Repeat("a", 64)), http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"name of 254", fmt.Sprintf(`{"domain":"%s.example"}`, strings.Repeat("abcdefghi.", 25)), http.StatusUnprocessableEntity, licadmin.EINVALIDDOMAIN, nil},
		{"public webmail", `{"domain":"gmail.com"}`, http.StatusConflict, licadmin.EDOMAINCLAIMED, nil},
		{"public webmail, other case", `{"domain":" Outlook.COM. "}`, http.StatusConflict, licadmin.EDOMAINCLAIMED, nil},
		{"approved for another account", `{"domain":"globex.test"}`, http.StatusConflict, licadmin.EDOMAINCLAIMED, nil},
		{"approved for another account, other case", `{"domain":"GLOBEX.test."}`, http.StatusConflict, licadmin.EDOMAINCLAIMED, nil},
		{"no domain", `{}`, http.StatusBadRequest, licadmin.EINVALID, []string{"domain:required"}},
		{"null domain", `{"domain":null}`, http.StatusBadRequest, licadmin.EINVALID, []string{"domain:required"}},
		{"domain a number", `{"domain":5}`, http.StatusBadRequest, licadmin.EINVALID, []string{"domain:invalid_type"}},
		{"domain a list", `{"domain":["a.example"]}`, http.StatusBadRequest, licadmin.EINVALID, []string{"domain:invalid_type"}},
		{"unknown field", `{"domain":"x.example","accountId":"a"}`, http.StatusBadRequest, licadmin.EINVALID, []string{"accountId:unknown_field"}},
		{"not JSON", `domain=x.example`, http.StatusBadRequest, licadmin.EINVALID, []string{"body:invalid_json"}},
		{"empty body", ``, http.StatusBadRequest, licadmin.EINVALID, []string{"body:required"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			p := f.requestDomain(apitest.Request{Route: routeDomains, Email: f.admin, Body: c.body}).WantProblem(t, c.status, c.code)
			if got := fields(p); !slices.Equal(got, c.fields) {
				t.Fatalf("errors %v, want %v", got, c.fields)
			}
		})
	}
	wantNothingWritten(t, f.Env, f.acct, items, audits)
}

// TestVerifyDomain ensures POST /v1/domains/{domain}/verify against a real
// DNS server on loopback: the TXT record value found (among other records,
// or split in several strings) approves the domain (its global claim, then
// users in it can be added); a name that does not exist, one without TXT
// records and a wrong value answer 422 domain_unverified; a failing server
// and a server that never answers answer 503 service_unavailable (the
// lookup failed; retry), never remembered under an Idempotency-Key, so the
// same request verifies once DNS answers; none changes anything; an approved domain
// answers as it is without asking DNS; unknown domains, invalid names and
// other accounts' domains answer the same 404.
func TestVerifyDomain(t *testing.T) {
	f := newDNSFixture(t)
	t.Run("approved", func(t *testing.T) {
		d := f.request(t, f.admin, "verified.example")
		f.dns.set("verified.example", "v=spf1 -all", *d.TXTRecord, "google-site-verification=x")
		n := len(f.Env.AuditLog(t, f.acct))
		r := f.verify(domainReq(routeVerifyDomain, f.admin, "Verified.Example."))
		v := domainOf(t, r)
		if v.Status != licadmin.DomainApproved || v.ApprovedAt == nil || *v.TXTRecord != *d.TXTRecord || v.Domain != "verified.example" || !v.CreatedAt.Equal(d.CreatedAt) {
			t.Fatalf("verified: %s", r.Body)
		}
		if h := claimHolder(t, f.Env, "verified.example"); h != f.acct {
			t.Fatalf("claim held by %q, want %s", h, f.acct)
		}
		recs := f.Env.AuditLog(t, f.acct)
		if len(recs) != n+1 || recs[0].Action != store.ActionDomainApprove || recs[0].Target != "verified.example" ||
			recs[0].Details["method"] != "dns" || recs[0].Actor != f.admin || recs[0].RequestID != r.RequestID || recs[0].SourceIP != sourceIP {
			t.Fatalf("audit %+v", recs[0])
		}
		f.userAs(t, f.admin, "someone@verified.example", "user")
		// Verifying again answers the approved domain without a lookup.
		q, n := f.dns.queries.Load(), len(f.Env.AuditLog(t, f.acct))
		if again := domainOf(t, f.verify(domainReq(routeVerifyDomain, f.admin, "verified.example"))); again.Status != licadmin.DomainApproved {
			t.Fatalf("again: %+v", again)
		}
		if f.dns.queries.Load() != q || len(f.Env.AuditLog(t, f.acct)) != n {
			t.Fatal("verifying an approved domain asked DNS or wrote an audit record")
		}
	})
	t.Run("record split in strings", func(t *testing.T) {
		d := f.request(t, f.admin, "split.example")
		v := *d.TXTRecord
		f.dns.setRecords("split.example", []string{v[:20], v[20:]})
		if got := domainOf(t, f.verify(domainReq(routeVerifyDomain, f.admin, "split.example"))); got.Status != licadmin.DomainApproved {
			t.Fatalf("split record: %+v", got)
		}
	})
	t.Run("internationalised name", func(t *testing.T) {
		d := f.request(t, f.admin, "bücher.example")
		f.dns.set("xn--bcher-kva.example", *d.TXTRecord)
		if got := domainOf(t, f.verify(domainReq(routeVerifyDomain, f.admin, "BÜCHER.example"))); got.Status != licadmin.DomainApproved || got.Domain != "xn--bcher-kva.example" {
			t.Fatalf("IDN: %+v", got)
		}
		f.userAs(t, f.admin, "kunde@xn--bcher-kva.example", "user")
	})

	pending := []struct {
		name   string
		domain string
		setup  func(txt string)
	}{
		{"name does not exist (NXDOMAIN)", "missing.example", func(string) {}},
		{"no TXT record", "notxt.example", func(string) { f.dns.set("notxt.example") }},
		{"wrong value", "wrong.example", func(string) {
			f.dns.set("wrong.example", "license-admin-verification=notthevalue", "v=spf1 -all")
		}},
		{"value of a subdomain only", "sub.example", func(txt string) { f.dns.set("www.sub.example", txt); f.dns.set("sub.example") }},
		{"value with a prefix", "prefixed.example", func(txt string) { f.dns.set("prefixed.example", "x"+txt) }},
		{"server failure", "servfail.example", func(string) { f.dns.fail("servfail.example") }},
	}
	for _, c := range pending {
		t.Run(c.name, func(t *testing.T) {
			d := f.request(t, f.admin, c.domain)
			c.setup(*d.TXTRecord)
			items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
			status, code := http.StatusUnprocessableEntity, licadmin.EDOMAINUNVERIFIED
			if c.domain == "servfail.example" {
				status, code = http.StatusServiceUnavailable, licadmin.EUNAVAILABLE
			}
			f.verify(domainReq(routeVerifyDomain, f.admin, c.domain)).WantProblem(t, status, code)
			wantNothingWritten(t, f.Env, f.acct, items, audits)
			f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("x@"+c.domain, "user")}).
				WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
		})
	}

	t.Run("server never answers", func(t *testing.T) {
		d := f.request(t, f.admin, "timeout.example")
		f.dns.set("timeout.example", *d.TXTRecord) // served, but not by the server asked
		useDNS(f.Env, silentDNS(t), 300*time.Millisecond)
		defer useDNS(f.Env, f.dns.Addr, 2*time.Second)
		start := time.Now()
		req := withHeaders(domainReq(routeVerifyDomain, f.admin, "timeout.example"), idemKey("verify-1"))
		p := f.verify(req).WantProblem(t, http.StatusServiceUnavailable, licadmin.EUNAVAILABLE)
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the lookup took %v with a 300ms timeout", took)
		}
		if !strings.Contains(p.Detail, "timed out") {
			t.Fatalf("detail %q does not say the lookup timed out", p.Detail)
		}
		// Once DNS answers, the same request (same key) verifies: the
		// failed lookup was not remembered.
		useDNS(f.Env, f.dns.Addr, 2*time.Second)
		if d := domainOf(t, f.verify(req)); d.Status != licadmin.DomainApproved {
			t.Fatalf("after DNS recovered: %+v", d)
		}
	})

	t.Run("not found", func(t *testing.T) {
		f.request(t, f.other, "theirs.example")
		unknown := f.verify(domainReq(routeVerifyDomain, f.admin, "unknown.example"))
		unknown.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
		foreign := f.verify(domainReq(routeVerifyDomain, f.admin, "theirs.example"))
		wantSameAnswer(t, foreign, unknown, "theirs.example", "unknown.example")
		approvedElsewhere := f.verify(domainReq(routeVerifyDomain, f.admin, "globex.test"))
		wantSameAnswer(t, approvedElsewhere, unknown, "globex.test", "unknown.example")
		f.verify(domainReq(routeVerifyDomain, f.admin, "not a domain")).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	})
	f.Invariants(t)
}

// TestVerifyDomainConcurrent ensures a domain is approved for one account
// at most (docs/api.md, rule 5) when two accounts that both requested it, and both
// published their value, verify at the same time, both having read before
// either writes: one answers 200, the other 409 domain_claimed, and the
// claim is the winner's.
func TestVerifyDomainConcurrent(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			opt, arm := writeBarrier(t)
			env := apitest.New(t, opt)
			dns := newDNSServer(t)
			useDNS(env, dns.Addr, 2*time.Second)
			a, b := "boss@alpha.test", "boss@beta.test"
			accounts := map[string]string{}
			accounts[a], _ = env.MustAccount(t, "Alpha", a)
			accounts[b], _ = env.MustAccount(t, "Beta", b)
			request, verify := api.CreateDomain(env.App), api.VerifyDomain(env.App)
			domain := fmt.Sprintf("contested%d.example", round)
			var values []string
			for _, caller := range []string{a, b} {
				d := domainOf(t, apitest.Do(t, request, apitest.Request{Route: routeDomains, Email: caller, Body: map[string]string{"domain": domain}}))
				values = append(values, *d.TXTRecord)
			}
			dns.set(domain, values...)

			arm()
			codes := map[string]string{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, caller := range []string{a, b} {
				wg.Go(func() {
					code := codeOf(t, apitest.Do(t, verify, domainReq(routeVerifyDomain, caller, domain)))
					mu.Lock()
					codes[caller] = code
					mu.Unlock()
				})
			}
			wg.Wait()
			var winner string
			for caller, code := range codes {
				if code == "ok" {
					winner = caller
				}
			}
			got := []string{codes[a], codes[b]}
			slices.Sort(got)
			if !slices.Equal(got, []string{licadmin.EDOMAINCLAIMED, "ok"}) {
				t.Fatalf("answers %v, want one ok and one %s", codes, licadmin.EDOMAINCLAIMED)
			}
			if h := claimHolder(t, env, domain); h != accounts[winner] {
				t.Fatalf("claim held by %q, want the winner %s", h, accounts[winner])
			}
		})
	}
}

// domainPage is the body of GET /v1/domains.
type domainPage struct {
	Items      []*licadmin.Domain `json:"items"`
	NextCursor *string            `json:"nextCursor"`
}

// listDomainPages follows nextCursor and returns the domains of every page.
func (f *xfixture) listDomainPages(t *testing.T, caller string, limit string) [][]string {
	t.Helper()
	q := map[string]string{}
	if limit != "" {
		q["limit"] = limit
	}
	var pages [][]string
	for _, ds := range apitest.Pages[*licadmin.Domain](t, q, func(q map[string]string) *apitest.Response {
		return f.listDomains(apitest.Request{Route: routeListDomains, Email: caller, Query: q})
	}) {
		var names []string
		for _, d := range ds {
			names = append(names, d.Domain)
		}
		pages = append(pages, names)
	}
	return pages
}

// TestListDomains ensures GET /v1/domains lists the caller's account's
// domains in name order with their status, in pages of limit (50 by
// default, 1 to 200) joined by tamper-evident cursors bound to the caller;
// another account sees only its own.
func TestListDomains(t *testing.T) {
	f := newXFixture(t)
	for _, d := range []string{"d3.example", "d1.example", "d5.example", "d2.example", "d4.example"} {
		f.request(t, f.admin, d)
	}
	want := []string{"acme.test", "d1.example", "d2.example", "d3.example", "d4.example", "d5.example"}
	for _, limit := range []string{"", "1", "2", "5", "6", "200"} {
		t.Run("limit="+limit, func(t *testing.T) {
			pages := f.listDomainPages(t, f.admin, limit)
			if got := flatten(pages); !slices.Equal(got, want) {
				t.Fatalf("domains %v, want %v", got, want)
			}
			if n := len(pages); n > 1 && len(pages[n-1]) == 0 {
				t.Fatalf("pages %v end with an empty page", pages)
			}
		})
	}
	r := f.listDomains(apitest.Request{Route: routeListDomains, Email: f.admin})
	var p domainPage
	r.Decode(t, &p)
	if d := p.Items[0]; d.Status != licadmin.DomainApproved || d.ApprovedAt == nil || d.TXTRecord != nil {
		t.Fatalf("the account's first domain %+v, want approved without TXT value", d)
	}
	if d := p.Items[1]; d.Status != licadmin.DomainPending || d.TXTRecord == nil || d.ApprovedAt != nil {
		t.Fatalf("a requested domain %+v, want pending with its TXT value", d)
	}
	if got := flatten(f.listDomainPages(t, f.other, "1")); !slices.Equal(got, []string{"globex.test"}) {
		t.Fatalf("the other account lists %v", got)
	}

	for _, l := range []string{"0", "201", "-1", "x"} {
		p := f.listDomains(apitest.Request{Route: routeListDomains, Email: f.admin, Query: map[string]string{"limit": l}}).
			WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
		if got := fields(p); !slices.Equal(got, []string{"limit:out_of_range"}) {
			t.Fatalf("limit=%s: errors %v", l, got)
		}
	}
	first := f.listDomains(apitest.Request{Route: routeListDomains, Email: f.admin, Query: map[string]string{"limit": "2"}})
	var fp domainPage
	first.Decode(t, &fp)
	c := *fp.NextCursor
	admin2 := "second.admin@acme.test"
	f.userAs(t, f.admin, admin2, "admin")
	// A user-list cursor is not a domain-list cursor.
	userCursor := *f.listPage(t, f.admin, map[string]string{"limit": "1"}).NextCursor
	for _, tc := range []struct{ name, caller, cursor string }{
		{"edited", f.admin, flipLast(c)},
		{"garbage", f.admin, "garbage"},
		{"another admin", admin2, c},
		{"another account", f.other, c},
		{"a user list cursor", f.admin, userCursor},
	} {
		t.Run("cursor "+tc.name, func(t *testing.T) {
			p := f.listDomains(apitest.Request{Route: routeListDomains, Email: tc.caller, Query: map[string]string{"cursor": tc.cursor}}).
				WantProblem(t, http.StatusBadRequest, licadmin.EINVALID)
			if got := fields(p); !slices.Equal(got, []string{"cursor:invalid_cursor"}) {
				t.Fatalf("errors %v", got)
			}
		})
	}
}

// flipLast returns s with its last character changed.
func flipLast(s string) string {
	if strings.HasSuffix(s, "A") {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}

// TestDeleteDomain ensures DELETE /v1/domains/{domain}: 204 with no body;
// the account's entry and, for an approved domain, its global claim are
// gone: users of the domain stay, new users (and email changes) in it are
// refused, another account can then have it approved; deleting a pending
// request leaves another account's approval alone; unknown, invalid and
// other accounts' domains answer the same 404.
func TestDeleteDomain(t *testing.T) {
	f := newDNSFixture(t)
	f.approve(t, f.admin, "gone.example")
	stay := f.userAs(t, f.admin, "stay@gone.example", "user")
	other := f.user(t, "other@acme.test")

	n := len(f.Env.AuditLog(t, f.acct))
	r := f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "Gone.Example."))
	r.Want(t, http.StatusNoContent)
	if r.Body != "" || r.Headers["Content-Type"] != "" {
		t.Fatalf("204 with body %q Content-Type %q", r.Body, r.Headers["Content-Type"])
	}
	recs := f.Env.AuditLog(t, f.acct)
	if len(recs) != n+1 || recs[0].Action != store.ActionDomainDelete || recs[0].Target != "gone.example" || recs[0].Details["claimReleased"] != "true" {
		t.Fatalf("audit %+v", recs[0])
	}
	if h := claimHolder(t, f.Env, "gone.example"); h != "" {
		t.Fatalf("the claim is still held by %s", h)
	}
	if u, _ := f.getUser(t, stay); u.Email != "stay@gone.example" {
		t.Fatalf("the domain's user changed: %+v", u)
	}
	f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("new@gone.example", "user")}).
		WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
	f.patch(f.admin, other, `{"email":"moved@gone.example"}`, nil).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
	// The user that stays can still be edited, its address kept.
	f.patch(f.admin, stay, `{"lastName":"Kept"}`, nil).Want(t, http.StatusOK)
	if slices.Contains(flatten(f.listDomainPages(t, f.admin, "")), "gone.example") {
		t.Fatal("the deleted domain is listed")
	}
	f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "gone.example")).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)

	// Another account can have it now.
	f.approve(t, f.other, "gone.example")
	if h := claimHolder(t, f.Env, "gone.example"); h != f.MustCaller(t, f.other).AccountID {
		t.Fatalf("claim held by %q after the other account verified", h)
	}

	// Acme's pending request of a domain that globex holds: deleting it
	// leaves globex's approval alone.
	f.request(t, f.admin, "shared.example")
	f.approve(t, f.other, "shared.example")
	f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "shared.example")).Want(t, http.StatusNoContent)
	if h := claimHolder(t, f.Env, "shared.example"); h != f.MustCaller(t, f.other).AccountID {
		t.Fatalf("deleting a pending request released another account's claim: holder %q", h)
	}
	f.userAs(t, f.other, "x@shared.example", "user")

	before := accountState(t, f.Env, f.MustCaller(t, f.other).AccountID)
	unknown := f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "unknown.example"))
	unknown.WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	foreign := f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "globex.test"))
	wantSameAnswer(t, foreign, unknown, "globex.test", "unknown.example")
	f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "not a domain")).WantProblem(t, http.StatusNotFound, licadmin.ENOTFOUND)
	wantState(t, f.Env, f.MustCaller(t, f.other).AccountID, before)
	f.Invariants(t)
}

// TestDomainAccess ensures only admins use the domain routes: a plain user,
// a token of nobody and no token are refused on each, and nothing is
// written.
func TestDomainAccess(t *testing.T) {
	f := newDNSFixture(t)
	plain := "plain@acme.test"
	f.user(t, plain)
	d := f.request(t, f.admin, "pending.example")
	f.dns.set("pending.example", *d.TXTRecord)
	items, audits := len(f.Scan(t)), len(f.Env.AuditLog(t, f.acct))
	routes := []struct {
		name string
		call func(caller string) *apitest.Response
	}{
		{"request", func(c string) *apitest.Response {
			return f.requestDomain(apitest.Request{Route: routeDomains, Email: c, Body: map[string]string{"domain": "new.example"}})
		}},
		{"verify", func(c string) *apitest.Response { return f.verify(domainReq(routeVerifyDomain, c, "pending.example")) }},
		{"list", func(c string) *apitest.Response {
			return f.listDomains(apitest.Request{Route: routeListDomains, Email: c})
		}},
		{"delete", func(c string) *apitest.Response {
			return f.deleteDomain(domainReq(routeDeleteDomain, c, "pending.example"))
		}},
	}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			rt.call(plain).WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
			rt.call("stranger@acme.test").WantProblem(t, http.StatusForbidden, licadmin.EFORBIDDEN)
			r := rt.call("")
			r.WantProblem(t, http.StatusUnauthorized, licadmin.EUNAUTHORIZED)
			if r.Headers["WWW-Authenticate"] != "Bearer" {
				t.Fatalf("401 without WWW-Authenticate: %v", r.Headers)
			}
		})
	}
	wantNothingWritten(t, f.Env, f.acct, items, audits)
}

// TestDomainIdempotency ensures rule 9 on the domain routes: a retry with
// the same key answers the first response (201 with Location, the verified
// 200, the empty 204) and changes nothing; the same key on another request
// answers 422.
func TestDomainIdempotency(t *testing.T) {
	f := newDNSFixture(t)
	n := len(f.Env.AuditLog(t, f.acct))
	req := apitest.Request{Route: routeDomains, Email: f.admin, Body: map[string]string{"domain": "idem.example"}, Headers: idemKey("dom-1")}
	first := f.requestDomain(req)
	first.Want(t, http.StatusCreated)
	wantReplay(t, first, f.requestDomain(req))
	other := req
	other.Body = map[string]string{"domain": "idem2.example"}
	f.requestDomain(other).WantProblem(t, http.StatusUnprocessableEntity, licadmin.EIDEMREUSED)

	f.dns.set("idem.example", *domainOf(t, first).TXTRecord)
	v := withHeaders(domainReq(routeVerifyDomain, f.admin, "idem.example"), idemKey("dom-2"))
	v1 := f.verify(v)
	v1.Want(t, http.StatusOK)
	wantReplay(t, v1, f.verify(v))

	d := withHeaders(domainReq(routeDeleteDomain, f.admin, "idem.example"), idemKey("dom-3"))
	d1 := f.deleteDomain(d)
	d1.Want(t, http.StatusNoContent)
	d2 := f.deleteDomain(d)
	wantReplay(t, d1, d2)
	if d2.Body != "" {
		t.Fatalf("replayed 204 with body %q", d2.Body)
	}
	if got := len(f.Env.AuditLog(t, f.acct)); got != n+3 {
		t.Fatalf("%d audit records for three changes", got-n)
	}
}

// TestOperatorApproveDomain ensures the operator path approves a domain
// without DNS, with the same global claim: users in it can be added; it
// keeps a pending request's TXT value; it answers domain_claimed for a
// domain of another account and for webmail, not_found for an unknown
// account, invalid_domain for invalid names; it records an audit entry
// by "operator" with the Lambda invocation's request id.
func TestOperatorApproveDomain(t *testing.T) {
	f := newXFixture(t)
	handler := operator.ApproveDomainHandler(f.App.Operator)
	ctx := lambdacontext.NewContext(apitest.AsFunction(context.Background(), "ApproveDomainFunction"), &lambdacontext.LambdaContext{AwsRequestID: "lambda-approve-1"})

	n, from := len(f.Env.AuditLog(t, f.acct)), time.Now()
	d, err := handler(ctx, operator.ApproveDomainInput{AccountID: f.acct, Domain: " Ops.Example. "})
	if err != nil {
		t.Fatal(err)
	}
	if d.Domain != "ops.example" || d.Status != licadmin.DomainApproved || d.TXTRecord != nil || d.ApprovedAt == nil {
		t.Fatalf("approved %+v", d)
	}
	wantAudit(t, f.Env, f.acct, n,
		store.Audit{Actor: licadmin.OperatorActor, Action: store.ActionDomainApprove, Target: "ops.example", RequestID: "lambda-approve-1"}, from, time.Now())
	f.userAs(t, f.admin, "staff@ops.example", "user")

	pending := f.request(t, f.admin, "pending.example")
	if d, err = f.App.Operator.ApproveDomain(context.Background(), operator.ApproveDomainInput{AccountID: f.acct, Domain: "pending.example"}); err != nil {
		t.Fatal(err)
	}
	if d.TXTRecord == nil || *d.TXTRecord != *pending.TXTRecord || !d.CreatedAt.Equal(pending.CreatedAt) {
		t.Fatalf("approving a request lost its TXT value or time: %+v", d)
	}
	if list := flatten(f.listDomainPages(t, f.admin, "")); !slices.Equal(list, []string{"acme.test", "ops.example", "pending.example"}) {
		t.Fatalf("domains %v", list)
	}
	// Approving again is harmless.
	if _, err := f.App.Operator.ApproveDomain(context.Background(), operator.ApproveDomainInput{AccountID: f.acct, Domain: "ops.example"}); err != nil {
		t.Fatalf("approving again: %v", err)
	}

	items := len(f.Scan(t))
	cases := []struct {
		name string
		in   operator.ApproveDomainInput
		code string
	}{
		{"domain of another account", operator.ApproveDomainInput{AccountID: f.MustCaller(t, f.other).AccountID, Domain: "ops.example"}, licadmin.EDOMAINCLAIMED},
		{"unknown account", operator.ApproveDomainInput{AccountID: "01NOSUCHACCOUNT", Domain: "free.example"}, licadmin.ENOTFOUND},
		{"webmail", operator.ApproveDomainInput{AccountID: f.acct, Domain: "gmail.com"}, licadmin.EDOMAINCLAIMED},
		{"invalid name", operator.ApproveDomainInput{AccountID: f.acct, Domain: "not a domain"}, licadmin.EINVALIDDOMAIN},
		{"no account", operator.ApproveDomainInput{Domain: "free.example"}, licadmin.EINVALID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := f.App.Operator.ApproveDomain(context.Background(), c.in); licadmin.ErrorCode(err) != c.code {
				t.Fatalf("error %v, want %s", err, c.code)
			}
		})
	}
	if got := len(f.Scan(t)); got != items {
		t.Fatalf("refused approvals wrote %d items", got-items)
	}
	f.Invariants(t)
}

// TestDomainProblemsHaveStatuses ensures every code the domain routes use
// has its own status in the problem table (a code missing there would
// answer 500).
func TestDomainProblemsHaveStatuses(t *testing.T) {
	for code, status := range map[string]int{
		licadmin.EINVALIDDOMAIN: http.StatusUnprocessableEntity, licadmin.EDOMAINUNVERIFIED: http.StatusUnprocessableEntity,
		licadmin.EDOMAINCLAIMED: http.StatusConflict, licadmin.ELASTADMIN: http.StatusConflict,
		licadmin.EPRECONDITION: http.StatusPreconditionFailed, licadmin.EREQUIRESPRO: http.StatusUnprocessableEntity,
	} {
		if got := apigw.StatusOf(code); got != status {
			t.Errorf("%s answers %d, want %d", code, got, status)
		}
	}
}

// TestSampleEvents ensures the sample events of the user-edit and domain
// functions (infra/events, for `sam local invoke`) are API Gateway events
// of the routes they name, that the handlers answer as expected against an
// account whose admin is the events' caller and that has none of their
// users. Against the world that `go run ./infra/local seed` creates, every
// sample event succeeds (infra/stack TestSeededSampleEvents).
func TestSampleEvents(t *testing.T) {
	f := newDNSFixture(t)
	cases := []struct {
		file   string
		h      apigw.Handler
		status int
	}{
		{"update-user.json", f.editHandler, http.StatusNotFound},
		{"delete-user.json", f.deleteHandler, http.StatusNotFound},
		{"list-domains.json", api.ListDomains(f.App), http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "infra", "events", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("%s: %v", c.file, err)
			}
			if ev.RouteKey != ev.RequestContext.RouteKey || !strings.HasPrefix(ev.RouteKey, ev.RequestContext.HTTP.Method+" ") {
				t.Fatalf("%s: route %q, context route %q, method %q", c.file, ev.RouteKey, ev.RequestContext.RouteKey, ev.RequestContext.HTTP.Method)
			}
			// A fresh key: the events' keys must not replay one another.
			if ev.Headers["idempotency-key"] != "" {
				ev.Headers["idempotency-key"] = c.file
			}
			resp, err := c.h(context.Background(), ev)
			if err != nil || resp.StatusCode != c.status {
				t.Fatalf("%s answered %d %s (%v), want %d", c.file, resp.StatusCode, resp.Body, err, c.status)
			}
		})
	}
	var in operator.ApproveDomainInput
	b, err := os.ReadFile(filepath.Join("..", "..", "infra", "events", "approve-domain.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.AccountID == "" || in.Domain == "" {
		t.Fatalf("approve-domain.json: %+v %v", in, err)
	}
	if _, err := f.App.Operator.ApproveDomain(context.Background(), in); licadmin.ErrorCode(err) != licadmin.ENOTFOUND {
		t.Fatalf("approve-domain.json for an unknown account: %v", err)
	}
}

// TestDomainDeletedInFlight ensures rule 5 when a domain's deletion
// commits while a user of that domain is being added: the deletion is
// sent after the addition read the domain as approved and before its
// transaction, whose check of the domain's approval then refuses it (422
// domain_not_approved, nothing written), for a new user and for an email
// change alike.
func TestDomainDeletedInFlight(t *testing.T) {
	f := newDNSFixture(t)
	opt, beforeNext, ran := apitest.BeforeNextTransaction()
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	other := f.user(t, "other@acme.test")
	for _, c := range []struct {
		name string
		send func() *apitest.Response
	}{
		{"a new user", func() *apitest.Response {
			return f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("new@race.example", "user")})
		}},
		{"an email change", func() *apitest.Response {
			return f.patch(f.admin, other, `{"email":"moved@race.example"}`, nil)
		}},
	} {
		f.approve(t, f.admin, "race.example")
		before := len(f.Scan(t))
		beforeNext(func() {
			f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "race.example")).Want(t, http.StatusNoContent)
		})
		r := c.send()
		if !ran() {
			t.Fatalf("%s: the deletion did not run", c.name)
		}
		r.WantProblem(t, http.StatusUnprocessableEntity, licadmin.EDOMAINNOTAPPROVED)
		// The deletion removed the account's entry and the global claim.
		if n := len(f.Scan(t)); n != before-2+1 {
			t.Fatalf("%s: %d items, want %d: the deletion's audit record only", c.name, n, before-1)
		}
	}
	if u, _ := f.getUser(t, other); u.Email != "other@acme.test" {
		t.Fatalf("the user's email changed to %s", u.Email)
	}
	f.Invariants(t)
}

// TestLostAnswerEveryChange ensures a change whose transaction committed
// but whose answer was lost (the SDK retries with the same
// ClientRequestToken) is applied once and answered as a success, for the
// changes of users, roles, domains, activation, the alert threshold and
// imports: each writes exactly one audit record, and the table's
// invariants hold.
func TestLostAnswerEveryChange(t *testing.T) {
	f := newDNSFixture(t)
	opt, calls, arm := apitest.LoseNextTransaction()
	f.App.Store.DB = dynamodb.New(f.App.DynamoDB.Options(), opt)
	u := f.user(t, "u@acme.test")
	var created string
	steps := []struct {
		name string
		send func() *apitest.Response
	}{
		{"create user", func() *apitest.Response {
			r := f.h.create(apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("new@acme.test", "user")})
			if r.StatusCode == http.StatusCreated {
				created = r.User(t).ID
			}
			return r
		}},
		{"promote", func() *apitest.Response { return f.patch(f.admin, u, `{"role":"admin"}`, nil) }},
		{"demote", func() *apitest.Response { return f.patch(f.admin, u, `{"role":"user"}`, nil) }},
		{"change email", func() *apitest.Response { return f.patch(f.admin, u, `{"email":"renamed@acme.test"}`, nil) }},
		{"send activation email", func() *apitest.Response {
			return apitest.Do(t, api.SendActivationEmail(f.App), userReq("POST /v1/users/{userId}/activation-email", f.admin, u, nil))
		}},
		{"alert threshold", func() *apitest.Response {
			return apitest.Do(t, api.SetAlertThreshold(f.App), apitest.Request{Route: "PATCH /v1/licenses/{tier}", Params: map[string]string{"tier": "eco"},
				Email: f.admin, Body: map[string]int{"alertThreshold": 2}})
		}},
		{"request domain", func() *apitest.Response {
			r := f.requestDomain(apitest.Request{Route: routeDomains, Email: f.admin, Body: map[string]string{"domain": "lost.example"}})
			if r.StatusCode == http.StatusCreated {
				var d licadmin.Domain
				r.Decode(t, &d)
				f.dns.set("lost.example", *d.TXTRecord)
			}
			return r
		}},
		{"verify domain", func() *apitest.Response { return f.verify(domainReq(routeVerifyDomain, f.admin, "lost.example")) }},
		{"delete domain", func() *apitest.Response { return f.deleteDomain(domainReq(routeDeleteDomain, f.admin, "lost.example")) }},
		{"create import", func() *apitest.Response {
			return apitest.Do(t, api.CreateImport(f.App), apitest.Request{Route: "POST /v1/imports", Email: f.admin, Body: map[string]bool{"dryRun": false}})
		}},
		{"delete user", func() *apitest.Response { return f.deleteUser(userReq(routeDeleteUser, f.admin, created, nil)) }},
	}
	for _, s := range steps {
		audits := len(f.Env.AuditLog(t, f.acct))
		lost := calls.Get("lost:TransactWriteItems")
		arm()
		r := s.send()
		if r.StatusCode < 200 || r.StatusCode > 299 {
			t.Fatalf("%s with its answer lost: %d %s", s.name, r.StatusCode, r.Body)
		}
		if calls.Get("lost:TransactWriteItems") != lost+1 {
			t.Fatalf("%s: no transaction's answer was lost", s.name)
		}
		if n := len(f.Env.AuditLog(t, f.acct)); n != audits+1 {
			t.Fatalf("%s: %d audit records written, want 1: the change applied %d times", s.name, n-audits, n-audits)
		}
	}
	f.Invariants(t)
}
