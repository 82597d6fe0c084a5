package bench

import (
	"fmt"
	"math"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// The bill: what a million license operations, a million usage events and
// a 100,000-row import cost on demand in AWS, from the capacity units the
// benchmark computed (bench_capacity.go) and the functions' measured time
// times the memory template.yaml gives them.

// awsPrices are AWS's published on-demand prices, us-east-1, in USD, and
// the date they are as of: the one place to update them.
var awsPrices = struct {
	AsOf string
	// DynamoDB on-demand: per write and read request unit (the prices of
	// 2024-11-01, when on-demand throughput was cut by half).
	WriteUnit, ReadUnit float64
	// Lambda on arm64 (Graviton), first tier: per GB-second of duration
	// (billed per millisecond) and per request.
	GBSecond, Request float64
}{
	AsOf:      "2024-11-01",
	WriteUnit: 0.625 / 1e6,
	ReadUnit:  0.125 / 1e6,
	GBSecond:  0.0000133334,
	Request:   0.20 / 1e6,
}

// costOf is the on-demand cost of one operation in USD: its write and read
// units, and one function's invocations with their duration (seconds per
// operation, of a function with memoryMB).
func costOf(wcu, rcu, seconds float64, memoryMB int, invocations float64) float64 {
	return wcu*awsPrices.WriteUnit + rcu*awsPrices.ReadUnit +
		seconds*float64(memoryMB)/1024*awsPrices.GBSecond + invocations*awsPrices.Request
}

// functionMemoryMB is the MemorySize template.yaml gives function id (its
// own, or the Globals one).
func functionMemoryMB(id string) (int, error) {
	d, err := template.ParseDocument(licenseadmin.Template)
	if err != nil {
		return 0, err
	}
	if r, ok := d.Resources[id]; ok {
		if m, ok := asInt(r.Properties["MemorySize"]); ok {
			return m, nil
		}
	}
	if m, ok := asInt(template.Path(d.Globals, "Function.MemorySize")); ok {
		return m, nil
	}
	return 128, nil // Lambda's default
}

func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case float64:
		return int(math.Round(x)), true
	}
	return 0, false
}

// defineCosts defines the three bills.
func (b *bench) defineCosts() {
	prices := fmt.Sprintf("on-demand prices of us-east-1 as of %s (DynamoDB $%.3f per million write units, $%.3f per million read units; Lambda arm64 $%.10f per GB-second and $%.2f per million requests)",
		awsPrices.AsOf, awsPrices.WriteUnit*1e6, awsPrices.ReadUnit*1e6, awsPrices.GBSecond, awsPrices.Request*1e6)
	b.figs.define(figureDef{ID: "cost.license.million", Title: "1 million license operations", Unit: "USD",
		Meaning: "a million license operations, a quarter each of assign, modify, transfer and remove: their write and read units (<op>.wcu, <op>.rcu: the stream function's writes included) plus one Lambda invocation each of the API p50 at concurrency 1 (an upper bound of the function's own time: it includes HTTP and the local gateway) at the function's memory; not included: the stream functions' invocations (batched), and SES for the confirmation of each assign and transfer; " + prices})
	b.figs.define(figureDef{ID: "cost.usage.million", Title: "1 million usage events", Unit: "USD",
		Meaning: "a million distinct usage events of the ingestion's stream (redeliveries included in what they cost): ingest.wcu and ingest.rcu per event, plus the ingest and recording functions' handler time and invocations per event at their memory; SQS is not included; " + prices})
	b.figs.define(figureDef{ID: "cost.import.100k", Title: "a 100,000-row import", Unit: "USD",
		Meaning: "an import of 100,000 users without licenses: the write units of its chunk transactions and of the new users' search index (import.row.wcu per row) plus the import function's time at import.plain.rows, at its memory; S3 is not included; " + prices})
}

// usageCost is what one distinct usage event cost in the ingestion run.
type usageCost struct {
	wcu, rcu                    float64
	ingestSeconds, countSeconds float64
	invocations                 float64
}

// million is the cost of a million events.
func (u usageCost) million() (float64, error) {
	ingestMB, err := functionMemoryMB("IngestUsageFunction")
	if err != nil {
		return 0, err
	}
	countMB, err := functionMemoryMB("RecordUsageFunction")
	if err != nil {
		return 0, err
	}
	per := costOf(u.wcu, u.rcu, u.ingestSeconds, ingestMB, 0) + costOf(0, 0, u.countSeconds, countMB, 0) + u.invocations*awsPrices.Request
	return per * 1e6, nil
}
