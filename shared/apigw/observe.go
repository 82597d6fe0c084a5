package apigw

import (
	"net/http"
	"regexp"
	"time"
)

// RequestMetrics records each request's outcome (CloudWatch EMF in
// Lambda: *metrics.Emitter). A nil Server.Metrics records nothing.
type RequestMetrics interface {
	// Request records one request of operation op: its status and the
	// time spent in the handler.
	Request(op string, status int, latency time.Duration)
}

// Outcomes of a request, as its log line reports them.
const (
	OutcomeOK       = "ok"       // 1xx to 3xx
	OutcomeRejected = "rejected" // 4xx: the request was refused, state unchanged
	OutcomeFailed   = "failed"   // 5xx: see the err attribute
)

// outcome classifies a status.
func outcome(status int) string {
	switch {
	case status >= http.StatusInternalServerError:
		return OutcomeFailed
	case status >= http.StatusBadRequest:
		return OutcomeRejected
	}
	return OutcomeOK
}

// emailPattern finds email addresses in error texts (SDK errors quote the
// keys they failed on, such as EMAIL#jane@example.com).
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})`)

// RedactEmails masks the local part of every email address in s, keeping
// its first character and the domain ("j***@example.com"), so that logs
// tell which tenant a failure concerns without naming the person.
func RedactEmails(s string) string {
	return emailPattern.ReplaceAllStringFunc(s, func(m string) string {
		sub := emailPattern.FindStringSubmatch(m)
		return m[:1] + "***@" + sub[1]
	})
}
