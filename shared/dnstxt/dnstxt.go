// Package dnstxt looks up DNS TXT records, the proof that an account
// controls an email domain (docs/api.md, rule 5). It wraps Go's own resolver so that
// the server it asks is configurable (DNS_RESOLVER) and every lookup is
// bounded in time: a Lambda must answer before its own timeout even when a
// name server never does.
package dnstxt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultTimeout bounds one lookup when Resolver.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// Resolver looks up TXT records.
type Resolver struct {
	// Server is the name server's host:port. Empty means the system's
	// resolvers (/etc/resolv.conf), as in AWS Lambda.
	Server string
	// Timeout bounds one lookup, retries included; DefaultTimeout when zero.
	Timeout time.Duration
}

// ErrTimeout reports that no answer came in time.
var ErrTimeout = errors.New("the DNS lookup timed out")

// LookupTXT returns the TXT records of name, each record's strings joined
// as one value. A name that does not exist or has no TXT record returns no
// records and no error. It fails with an error wrapping ErrTimeout when the
// server does not answer in time, and with another error when the lookup
// fails (server failure, refused, unreachable).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The trailing dot makes the name absolute: no search domain of
	// resolv.conf is ever appended.
	fqdn := strings.TrimSuffix(name, ".") + "."
	txt, err := r.resolver().LookupTXT(ctx, fqdn)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return txt, nil
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, nil
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("TXT %s: %w", name, ErrTimeout)
	}
	return nil, fmt.Errorf("TXT %s: %w", name, err)
}

func (r *Resolver) resolver() *net.Resolver {
	if r.Server == "" {
		return &net.Resolver{PreferGo: true}
	}
	server := r.Server
	return &net.Resolver{
		PreferGo: true,
		// Every query goes to the configured server, over the network the
		// resolver chose (UDP, or TCP for a truncated answer).
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}
