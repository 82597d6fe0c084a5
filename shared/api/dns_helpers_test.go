package api_test

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/dnstxt"
)

// dnsServer is a real DNS server on loopback (UDP) that serves TXT records
// the test sets: a name with records answers them, a name set without
// records answers NOERROR with no answer, a name marked failing answers
// SERVFAIL, and any other name answers NXDOMAIN.
type dnsServer struct {
	Addr    string
	queries atomic.Int64

	mu      sync.Mutex
	txt     map[string][][]string // name -> records, each its strings
	failing map[string]bool
}

// newDNSServer starts a DNS server on 127.0.0.1 and stops it when the test
// ends.
func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for DNS: %v", err)
	}
	d := &dnsServer{Addr: pc.LocalAddr().String(), txt: map[string][][]string{}, failing: map[string]bool{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: func() { close(started) }}
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("DNS server: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return d
}

// set makes name answer these TXT values, one record each (none: the name
// exists without TXT records).
func (d *dnsServer) set(name string, values ...string) {
	var recs [][]string
	for _, v := range values {
		recs = append(recs, []string{v})
	}
	d.setRecords(name, recs...)
}

// setRecords makes name answer these TXT records, each made of several
// strings (a record's strings are one value once joined).
func (d *dnsServer) setRecords(name string, records ...[]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if records == nil {
		records = [][]string{}
	}
	d.txt[strings.ToLower(name)] = records
}

// fail makes name answer SERVFAIL.
func (d *dnsServer) fail(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failing[strings.ToLower(name)] = true
}

func (d *dnsServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	d.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range r.Question {
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		recs, ok := d.txt[name]
		switch {
		case d.failing[name]:
			m.Rcode = dns.RcodeServerFailure
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeTXT:
			for _, rec := range recs {
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: rec,
				})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// silentDNS returns the address of a UDP socket on loopback that receives
// queries and never answers, as a dead name server does.
func silentDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}

// useDNS points the env's domain verification at the DNS server addr.
func useDNS(env *apitest.Env, addr string, timeout time.Duration) {
	env.App.Domains.TXT = &dnstxt.Resolver{Server: addr, Timeout: timeout}
}
