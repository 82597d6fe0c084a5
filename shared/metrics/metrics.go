// Package metrics writes CloudWatch metrics in the Embedded Metric Format
// (EMF): one JSON line on stdout per observation, which Lambda ships to
// CloudWatch Logs and CloudWatch turns into metrics of the namespace
// LicenseAdmin, with no API call and no added latency. Properties that
// would be too many distinct values for a dimension (an account id) ride
// along in the same line, searchable with CloudWatch Logs Insights.
//
// A nil *Emitter records nothing, so that code and tests that do not wire
// one keep working. The methods are the project's metrics, one per thing
// an operator watches; they are safe for concurrent use.
package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of every metric of License Admin.
const Namespace = "LicenseAdmin"

// Unit is a CloudWatch metric unit.
type Unit string

// The units the project's metrics use.
const (
	Count          Unit = "Count"
	Milliseconds   Unit = "Milliseconds"
	CountPerSecond Unit = "Count/Second"
	None           Unit = "None"
)

// Metric names, the contract with template.yaml's alarms and dashboards.
const (
	// Requests counts API requests, per Operation and in total.
	Requests = "Requests"
	// ServerErrors counts API answers with a 5xx status.
	ServerErrors = "ServerErrors"
	// ClientErrors counts API answers with a 4xx status.
	ClientErrors = "ClientErrors"
	// Latency is a request's time in its handler, in milliseconds.
	Latency = "Latency"
	// TransactionConflicts counts TransactWriteItems attempts cancelled by
	// a conflicting transaction or throttling.
	TransactionConflicts = "TransactionConflicts"
	// TransactionRetries counts those attempts that the store retried.
	TransactionRetries = "TransactionRetries"
	// TransactionsAbandoned counts transactions given up after too many
	// conflicts (answered 503 service_unavailable).
	TransactionsAbandoned = "TransactionsAbandoned"
	// LicensesAssigned and LicensesAvailable are a pool tier's levels when
	// they were observed, per Tier (the account id is a property).
	LicensesAssigned  = "LicensesAssigned"
	LicensesAvailable = "LicensesAvailable"
	// ImportRows, ImportRowsFailed and ImportRowsPerSecond describe the
	// work of one invocation of the import function (a large import runs
	// over several).
	ImportRows          = "ImportRows"
	ImportRowsFailed    = "ImportRowsFailed"
	ImportRowsPerSecond = "ImportRowsPerSecond"
	// EmailsSent and EmailsFailed count SES sends per email Kind;
	// EmailsRejected counts the failures no retry can mend (an unverified
	// sender, the SES sandbox, denied access), which the
	// EmailsRejectedAlarm pages on: throttled sends, which are retried,
	// are failures but not rejections.
	EmailsSent     = "EmailsSent"
	EmailsFailed   = "EmailsFailed"
	EmailsRejected = "EmailsRejected"
	// EmailsDeferred counts deliveries whose sends all failed for now
	// (throttling, an outage), left to the outbox sweeper's next try: the
	// EmailsDeferredAlarm pages when they go on for 15 minutes.
	EmailsDeferred = "EmailsDeferred"
	// EmailsGivenUp counts outbox emails the sweeper marked failed after
	// their last allowed attempt: emails nobody received.
	EmailsGivenUp = "EmailsGivenUp"
	// UsageEvents counts usage events ingested from the queue,
	// UsageEventsDropped those refused for good (malformed, unknown user)
	// and UsageEventsFailed those that could not be written for a while
	// (they go back to the queue).
	UsageEvents        = "UsageEvents"
	UsageEventsDropped = "UsageEventsDropped"
	UsageEventsFailed  = "UsageEventsFailed"
	// DropsRejected counts files dropped under drop/ that import nothing
	// (a malformed key, not a CSV, an unknown account), per Reason.
	DropsRejected = "DropsRejected"
)

// Emitter writes EMF lines.
type Emitter struct {
	// W receives one JSON line per observation (os.Stdout in Lambda).
	W io.Writer
	// Now returns the observation time; time.Now when nil.
	Now func() time.Time

	mu sync.Mutex
}

// New returns an Emitter writing to w.
func New(w io.Writer) *Emitter { return &Emitter{W: w} }

// Value is one metric of an observation.
type Value struct {
	Name  string
	Unit  Unit
	Value float64
}

// Emit writes one observation: values under the dimension sets (each a
// list of dimension names, which must all be keys of dims; an empty set
// aggregates over everything), with dims and props as the line's other
// fields. It writes nothing on a nil Emitter.
func (e *Emitter) Emit(dimSets [][]string, dims map[string]string, props map[string]any, values ...Value) {
	if e == nil || e.W == nil || len(values) == 0 {
		return
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	defs := make([]metricDef, len(values))
	line := make(map[string]any, len(dims)+len(props)+len(values)+1)
	for k, v := range props {
		line[k] = v
	}
	for k, v := range dims {
		line[k] = v
	}
	for i, v := range values {
		defs[i] = metricDef{Name: v.Name, Unit: v.Unit}
		line[v.Name] = v.Value
	}
	if dimSets == nil {
		dimSets = [][]string{}
	}
	line["_aws"] = awsMeta{
		Timestamp: now().UnixMilli(),
		CloudWatchMetrics: []directive{{
			Namespace:  Namespace,
			Dimensions: dimSets,
			Metrics:    defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return // only plain values are emitted: cannot happen
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.W.Write(b)
}

type awsMeta struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

type metricDef struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Request records one API request of operation op (the handler's name):
// Requests, ServerErrors (5xx), ClientErrors (4xx) and Latency, per
// Operation and in total (no dimension), which the API alarms use.
func (e *Emitter) Request(op string, status int, latency time.Duration) {
	e.Emit([][]string{{"Operation"}, {}}, map[string]string{"Operation": op}, map[string]any{"status": status},
		Value{Requests, Count, 1},
		Value{ServerErrors, Count, b2f(status >= 500)},
		Value{ClientErrors, Count, b2f(status >= 400 && status < 500)},
		Value{Latency, Milliseconds, float64(latency.Microseconds()) / 1000},
	)
}

// TransactionConflict records a TransactWriteItems attempt cancelled by a
// conflicting transaction or throttling; retried tells whether the store
// tries again (false: it gave up and answers 503).
func (e *Emitter) TransactionConflict(retried bool) {
	e.Emit([][]string{{}}, nil, nil,
		Value{TransactionConflicts, Count, 1},
		Value{TransactionRetries, Count, b2f(retried)},
		Value{TransactionsAbandoned, Count, b2f(!retried)},
	)
}

// LicensePool records a pool tier's levels, per Tier; accountID is a
// property (too many values for a dimension): find an account's series
// with Logs Insights.
func (e *Emitter) LicensePool(accountID, tier string, assigned, available int64) {
	e.Emit([][]string{{"Tier"}}, map[string]string{"Tier": tier}, map[string]any{"accountId": accountID},
		Value{LicensesAssigned, Count, float64(assigned)},
		Value{LicensesAvailable, Count, float64(available)},
	)
}

// Import records one invocation's share of a CSV import: the rows it
// read, the failed ones, and its throughput. dryRun imports are recorded under the DryRun dimension
// "true".
func (e *Emitter) Import(accountID string, dryRun bool, rows, failed int64, elapsed time.Duration) {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(rows) / elapsed.Seconds()
	}
	dry := "false"
	if dryRun {
		dry = "true"
	}
	e.Emit([][]string{{}, {"DryRun"}}, map[string]string{"DryRun": dry}, map[string]any{"accountId": accountID, "elapsedMs": elapsed.Milliseconds()},
		Value{ImportRows, Count, float64(rows)},
		Value{ImportRowsFailed, Count, float64(failed)},
		Value{ImportRowsPerSecond, CountPerSecond, rate},
	)
}

// DropRejected records a file dropped under drop/ that imports nothing,
// per Reason and in total.
func (e *Emitter) DropRejected(reason string) {
	e.Emit([][]string{{}, {"Reason"}}, map[string]string{"Reason": reason}, nil, Value{DropsRejected, Count, 1})
}

// Email records one SES send of an email of kind (activation,
// license_assigned, low_pool): EmailsSent or, when it failed, EmailsFailed,
// and EmailsRejected too when the failure is permanent (no retry sends
// it), per Kind and in total.
func (e *Emitter) Email(kind string, err error, permanent bool) {
	e.Emit([][]string{{"Kind"}, {}}, map[string]string{"Kind": kind}, nil,
		Value{EmailsSent, Count, b2f(err == nil)},
		Value{EmailsFailed, Count, b2f(err != nil)},
		Value{EmailsRejected, Count, b2f(err != nil && permanent)},
	)
}

// EmailDeferred records one delivery of an email of kind left to the
// outbox sweeper (EmailsDeferred, per Kind and in total; an alarm watches
// the total).
func (e *Emitter) EmailDeferred(kind string) {
	e.Emit([][]string{{"Kind"}, {}}, map[string]string{"Kind": kind}, nil, Value{EmailsDeferred, Count, 1})
}

// EmailGivenUp records one email of kind that the outbox sweeper gave up
// (EmailsGivenUp, per Kind and in total; an alarm watches the total).
func (e *Emitter) EmailGivenUp(kind string) {
	e.Emit([][]string{{"Kind"}, {}}, map[string]string{"Kind": kind}, nil, Value{EmailsGivenUp, Count, 1})
}

// Usage records a batch of usage events taken from the queue: how many
// were ingested, how many were dropped for good, and how many failed (and
// will be retried or dead-lettered).
func (e *Emitter) Usage(ingested, dropped, failed int) {
	e.Emit([][]string{{}}, nil, nil,
		Value{UsageEvents, Count, float64(ingested)},
		Value{UsageEventsDropped, Count, float64(dropped)},
		Value{UsageEventsFailed, Count, float64(failed)},
	)
}
