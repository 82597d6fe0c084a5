package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/oklog/ulid/v2"

	"licenseadmin/infra/stack"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// driveResult is the outcome of a closed-loop load: the latency of every
// operation that succeeded, how many failed (and the first failure), and
// the wall time.
type driveResult struct {
	lat      []time.Duration
	failed   int
	firstErr error
	elapsed  time.Duration
}

func (r driveResult) opsPerSecond() float64 {
	if r.elapsed <= 0 {
		return math.NaN()
	}
	return float64(len(r.lat)) / r.elapsed.Seconds()
}

// drive runs operations 0..n-1 with workers goroutines, each starting the
// next operation as soon as its previous one ended, until n have started
// or limit has passed: every load is bounded in count and in time. op gets
// the worker's index (0..workers-1), so that per-worker state needs no
// lock, and the operation's index; it is timed whole, so it must hold only
// the request being measured.
func drive(ctx context.Context, workers, n int, limit time.Duration, op func(ctx context.Context, worker, i int) error) driveResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		res   driveResult
		wg    sync.WaitGroup
		start = time.Now()
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			failed := 0
			var firstErr error
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				t0 := time.Now()
				err := op(ctx, w, i)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // cut by the time limit: not a failure
					}
					failed++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.failed += failed
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// assignTxs captures, for each user, the TransactWriteItems that the store
// sends to assign it a license of tier: exactly the assign's items and
// conditions, built by the store's own code.
func (b *bench) assignTxs(ctx context.Context, acct *benchAccount, users []*licadmin.User, tier licadmin.Tier) ([]*dynamodb.TransactWriteItemsInput, error) {
	ctx = benchRequest(ctx, acct)
	txs, err := b.stack.capture(func(st *store.Store) error {
		for _, u := range users {
			if _, err := st.AssignLicense(ctx, acct.admin, u, tier, time.Now().UTC()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(txs) != len(users) {
		return nil, fmt.Errorf("bench: captured %d assign transactions for %d users", len(txs), len(users))
	}
	return txs, nil
}

// pageOp is one request of an interleaved measurement: figure id.p50
// records its latency, and for a request through the API (api) id.reads
// the DynamoDB reads it made; what names it in errors.
type pageOp struct {
	id, what string
	api      bool
	op       func(ctx context.Context) error
}

// interleaved sends the requests of ops in turn, one at a time, for
// b.cfg.queryOps rounds (or until b.cfg.phaseLimit), and records each
// one's figures. A floor and the requests compared with it are so measured
// at the same moments: DynamoDB Local's pace here moves by a third within
// a minute, which measured one after the other moved their ratio by as
// much. It returns each op's latencies and the DynamoDB requests it made.
func (b *bench) interleaved(ctx context.Context, ops []pageOp) ([]driveResult, []requestCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.phaseLimit)
	defer cancel()
	res := make([]driveResult, len(ops))
	counts := make([]requestCounts, len(ops))
	for round := 0; round < b.cfg.queryOps && ctx.Err() == nil; round++ {
		for i, o := range ops {
			b.stack.counter.reset()
			t0 := time.Now()
			err := o.op(ctx)
			d := time.Since(t0)
			counts[i] = counts[i].add(b.stack.counter.reset())
			if err != nil {
				if ctx.Err() != nil {
					break // cut by the time limit: not a failure
				}
				return nil, nil, fmt.Errorf("%s: %w", o.what, err)
			}
			res[i].lat = append(res[i].lat, d)
			res[i].elapsed += d
		}
	}
	for i, o := range ops {
		b.figs.record(b.run, o.id+".p50", percentile(res[i].lat, 50))
		if o.api {
			b.figs.record(b.run, o.id+".reads", float64(counts[i].sum(readOps))/float64(len(res[i].lat)))
		}
	}
	return res, counts, nil
}

// benchRequest gives ctx the request metadata the API gives a request, so
// that captured audit records are the size of real ones.
func benchRequest(ctx context.Context, acct *benchAccount) context.Context {
	return licadmin.WithRequest(ctx, licadmin.Request{Email: acct.admin.Email, RequestID: stack.NewRequestID(), SourceIP: "127.0.0.1"})
}

// sendRaw sends captured transactions directly with the SDK, workers at
// once: no HTTP, no read, no service.
func (b *bench) sendRaw(ctx context.Context, txs []*dynamodb.TransactWriteItemsInput, workers int) (driveResult, error) {
	res := drive(ctx, workers, len(txs), b.cfg.phaseLimit, func(ctx context.Context, _, i int) error {
		_, err := b.stack.raw.TransactWriteItems(ctx, txs[i])
		return err
	})
	if res.failed > 0 {
		return res, fmt.Errorf("raw transactions: %d failed, first: %w", res.failed, res.firstErr)
	}
	return res, nil
}

// warmUp sends raw assign transactions and API assigns and removes, so
// that DynamoDB Local's JVM has compiled its hot paths before anything is
// measured (its first few hundred requests are several times slower).
func (b *bench) warmUp(ctx context.Context) error {
	start := time.Now()
	acct, err := b.stack.newAccount(ctx, "warm-up", map[licadmin.Tier]int64{licadmin.Eco: 1_000_000})
	if err != nil {
		return err
	}
	users, err := b.stack.seedUsers(ctx, acct, "warm", b.cfg.warmUpRaw)
	if err != nil {
		return err
	}
	txs, err := b.assignTxs(ctx, acct, users, licadmin.Eco)
	if err != nil {
		return err
	}
	if _, err := b.sendRaw(ctx, txs, 4); err != nil {
		return err
	}
	apiUsers, err := b.stack.seedUsers(ctx, acct, "warm-api", b.cfg.warmUpAPI)
	if err != nil {
		return err
	}
	for _, method := range []string{"POST", "DELETE"} {
		res := drive(ctx, 4, len(apiUsers), b.cfg.phaseLimit, func(ctx context.Context, _, i int) error {
			_, err := b.stack.expect(ctx, 200, method, "/v1/users/"+apiUsers[i].ID+"/license", acct.token, licenseBody(method, licadmin.Eco))
			return err
		})
		if res.failed > 0 {
			return fmt.Errorf("warm-up: %w", res.firstErr)
		}
	}
	b.stack.counter.reset()
	b.logf("warm-up: %d raw transactions and %d API requests in %s", len(users), 2*len(apiUsers), time.Since(start).Round(time.Millisecond))
	return nil
}

func licenseBody(method string, tier licadmin.Tier) any {
	if method == "DELETE" {
		return nil
	}
	return map[string]string{"tier": string(tier)}
}

// defineLatency defines the p50/p95/p99 figures of a load named name at
// concurrency c, compared with the same percentiles of floor; the p50's
// ratio must be at most target when target > 0.
func (b *bench) defineLatency(name, title, meaning string, c int, floor string, target float64) {
	for _, p := range []int{50, 95, 99} {
		d := figureDef{
			ID:      fmt.Sprintf("%s.c%d.p%d", name, c, p),
			Title:   fmt.Sprintf("%s p%d at concurrency %d", title, p, c),
			Unit:    "ms",
			Family:  name + ".c<N>.p<P>",
			Meaning: meaning + "; latency percentile P (ms) at concurrency N",
		}
		if floor != "" {
			d.Floor = fmt.Sprintf("%s.c%d.p%d", floor, c, p)
		}
		if p == 50 && target > 0 {
			d.Target = fmt.Sprintf("ratio <= %.1f", target)
			d.Check = ratioAtMost(target)
		}
		b.figs.define(d)
	}
}

func (b *bench) recordLatency(name string, c int, lat []time.Duration) {
	for _, p := range []int{50, 95, 99} {
		b.figs.record(b.run, fmt.Sprintf("%s.c%d.p%d", name, c, p), percentile(lat, float64(p)))
	}
}

// licenseOp is one license operation, measured through the API and as
// its raw transaction.
type licenseOp struct {
	name, title string
}

// licenseOps are measured in this order on each pair of fresh users (u,
// v): assign u, modify u, transfer u's license to v, remove v's.
var licenseOps = []licenseOp{
	{"assign", "assign (POST /v1/users/{id}/license)"},
	{"modify", "modify (PATCH /v1/users/{id}/license)"},
	{"transfer", "transfer (POST /v1/users/{id}/license/transfer)"},
	{"remove", "remove (DELETE /v1/users/{id}/license)"},
}

// licenseFigures measures the four license operations through the local
// API at concurrency 1 and 16, with the DynamoDB requests each one sends,
// and their floors: the same operations' transactions, as the store builds
// them, sent straight with the SDK. Floors and API are measured in
// alternating blocks (a block of raw assigns, a block of API assigns, a
// block of raw modifies, ...), so that both see the same machine: other
// processes and DynamoDB Local's own pauses affect them alike.
func (b *bench) licenseFigures(ctx context.Context) error {
	for _, c := range []int{1, 16} {
		for _, op := range licenseOps {
			b.defineLatency("floor."+op.name, "raw "+op.name+" transaction", "floor: the store's own TransactWriteItems for the operation (for assign: pool update with condition, user update with version condition, audit Put), captured from the store's code and sent directly with the SDK: no HTTP, no read, no service", c, "", 0)
			b.figs.define(figureDef{
				ID: fmt.Sprintf("floor.%s.c%d.ops", op.name, c), Title: fmt.Sprintf("raw %s transactions per second at concurrency %d", op.name, c), Unit: "ops/s",
				Family:  "floor.<op>.c<N>.ops",
				Meaning: "floor: raw transactions of the operation completed per second at concurrency N (assigns and modifies all update one pool item)",
			})
		}
		b.defineLatency("floor.read", "raw read of an operation's admin and user", "floor: the store's read of an operation's caller and user (LoadCaller's consistent BatchGetItem of the admin's email claim and the user item), captured and sent directly with the SDK; the API's assign, modify and remove read this before their write", c, "", 0)
		b.defineLatency("floor.readpair", "raw read of a transfer's admin and two users", "floor: the store's read of a transfer's caller and two users (LoadCaller's consistent BatchGetItem of the admin's email claim and both user items), captured and sent directly with the SDK", c, "", 0)
		b.figs.define(figureDef{
			ID: fmt.Sprintf("bound.transfer.c%d.p50", c), Title: fmt.Sprintf("least transfer p50 at concurrency %d", c), Unit: "ms",
			Family:  "bound.transfer.c<N>.p50",
			Floor:   fmt.Sprintf("floor.assign.c%d.p50", c),
			Meaning: "the least a transfer can take while keeping the contract: it must read both users (the answer is the target user, the target gets the source's tier) and commit its transaction, so floor.readpair p50 + floor.transfer p50, both raw; compared with floor.assign as api.transfer is, it shows how much of the 1.3 the contract alone uses (at concurrency 16 queueing makes the sum only indicative)",
		})
		for _, op := range licenseOps {
			b.defineLatency("api."+op.name, op.title, "the operation through the local HTTP API (real HTTP over loopback, keep-alive, bearer token checked like API Gateway's JWT authorizer, handler called in-process), from sending the request to reading the whole answer; compared with the targets' floor, the raw transaction of an assign (floor.assign)", c, "floor.assign", 1.3)
			b.figs.define(figureDef{
				ID: fmt.Sprintf("api.%s.c%d.p50.own", op.name, c), Title: fmt.Sprintf("%s p50 at concurrency %d against its own transaction", op.name, c), Unit: "ms",
				Family:  "api.<op>.c<N>.p50.own",
				Floor:   fmt.Sprintf("floor.%s.c%d.p50", op.name, c),
				Meaning: "the same p50, compared with the operation's own raw transaction (floor.<op>) instead of the assign's: stricter than the targets ask, informative (modify and remove commit cheaper transactions than an assign, so the user's read weighs more against them)",
			})
			b.figs.define(figureDef{
				ID: fmt.Sprintf("api.%s.c%d.writes", op.name, c), Title: op.name + " DynamoDB write requests per operation", Unit: "req/op",
				Family:  "api.<op>.c<N>.writes",
				Meaning: "DynamoDB write requests (TransactWriteItems, PutItem, UpdateItem, DeleteItem, BatchWriteItem; every attempt) per operation, counted by SDK middleware on the functions' client",
				Target:  "= 1", Check: exactly(1),
			})
			b.figs.define(figureDef{
				ID: fmt.Sprintf("api.%s.c%d.reads", op.name, c), Title: op.name + " DynamoDB read requests per operation", Unit: "req/op",
				Family:  "api.<op>.c<N>.reads",
				Meaning: "DynamoDB read requests (GetItem, BatchGetItem, Query, Scan; every attempt) per operation, counted the same way",
				Target:  "<= 1", Check: atMost(1),
			})
		}
	}
	b.defineLatency("floor.fixed", "fixed minimal transaction", "floor that does not move with the design: a TransactWriteItems defined in the benchmark (bench_fixed.go), not taken from the store: the pool counter update with its condition, the user update with its version condition and an audit Put, sent directly with the SDK on fresh users at concurrency 1, in a block beside each operation's raw and API blocks of every round", 1, "", 0)
	for _, op := range licenseOps {
		b.figs.define(figureDef{
			ID: fmt.Sprintf("api.%s.c1.p50.fixed", op.name), Title: op.name + " p50 at concurrency 1 against the fixed floor", Unit: "ms",
			Family:  "api.<op>.c1.p50.fixed",
			Floor:   "floor.fixed.c1.p50",
			Meaning: "the API p50 at concurrency 1 compared with the fixed minimal transaction (floor.fixed), which does not grow or shrink with the store's transactions",
			Target:  "ratio <= 1.6", Check: ratioAtMost(1.6),
		})
		b.figs.define(figureDef{
			ID: op.name + ".wcu", Title: op.name + " write units per operation", Unit: "WCU/op",
			Family:  "<op>.wcu",
			Meaning: "write capacity units per operation through the API at concurrency 1, computed from the requests the functions sent by DynamoDB's rules (bench_capacity.go: 1 KB per unit, twice inside a transaction, and the entry of every user written in the index gsi1, whose entries hold all attributes, once), plus what the stream function writes once the change committed (captured from the store): each changed user's search index entries and marker, in a transaction, and for assign and transfer the confirmation's outbox put with its entry in gsi1",
		})
		b.figs.define(figureDef{
			ID: op.name + ".rcu", Title: op.name + " read units per operation", Unit: "RCU/op",
			Family:  "<op>.rcu",
			Meaning: "read capacity units per operation, the same way (4 KB per unit, half when eventually consistent)",
		})
	}
	acct, err := b.stack.newAccount(ctx, "latency", map[licadmin.Tier]int64{licadmin.Eco: 1_000_000, licadmin.Advanced: 1_000_000})
	if err != nil {
		return err
	}
	for _, c := range []int{1, 16} {
		if err := b.licenseRounds(ctx, acct, c); err != nil {
			return err
		}
	}
	return nil
}

// licenseRounds runs the alternating blocks at concurrency c.
func (b *bench) licenseRounds(ctx context.Context, acct *benchAccount, c int) error {
	n, block := b.cfg.apiOps(c), b.cfg.blockOps(c)
	lat := map[string][]time.Duration{}
	busy := map[string]time.Duration{}
	counts := map[string]requestCounts{}
	var sample *licadmin.User // a user as seeded, for the stream's units
	for round := 0; round*block < n; round++ {
		m := min(block, n-round*block)
		raw, err := b.stack.seedUsers(ctx, acct, fmt.Sprintf("raw-c%d-r%d", c, round), 2*m)
		if err != nil {
			return err
		}
		api, err := b.stack.seedUsers(ctx, acct, fmt.Sprintf("api-c%d-r%d", c, round), 2*m)
		if err != nil {
			return err
		}
		sample = api[0]
		txs, err := b.licenseChains(ctx, acct, raw[:m], raw[m:])
		if err != nil {
			return err
		}
		reads, pairs, err := b.userReads(acct, raw[:m], raw[m:])
		if err != nil {
			return err
		}
		res := drive(ctx, c, m, b.cfg.phaseLimit, func(ctx context.Context, _, i int) error {
			_, err := b.stack.raw.BatchGetItem(ctx, reads[i])
			return err
		})
		if res.failed > 0 {
			return fmt.Errorf("raw reads: %w", res.firstErr)
		}
		lat["floor.read"] = append(lat["floor.read"], res.lat...)
		res = drive(ctx, c, m, b.cfg.phaseLimit, func(ctx context.Context, _, i int) error {
			_, err := b.stack.raw.BatchGetItem(ctx, pairs[i])
			return err
		})
		if res.failed > 0 {
			return fmt.Errorf("raw pair reads: %w", res.firstErr)
		}
		lat["floor.readpair"] = append(lat["floor.readpair"], res.lat...)
		// At concurrency 1 each operation's blocks have a block of the
		// fixed floor beside them, on fresh users.
		var fixed []*dynamodb.TransactWriteItemsInput
		if c == 1 {
			if fixed, err = b.fixedTxs(ctx, acct, round, len(licenseOps)*m); err != nil {
				return fmt.Errorf("fixed floor: %w", err)
			}
		}
		for k, op := range licenseOps {
			apiOp := b.apiChainOp(acct, op.name, api[:m], api[m:])
			rawOp := func() error {
				res, err := b.sendRaw(ctx, txs[k], c)
				lat["floor."+op.name] = append(lat["floor."+op.name], res.lat...)
				busy["floor."+op.name] += res.elapsed
				return err
			}
			measured := func() error {
				b.stack.counter.reset()
				res := drive(ctx, c, m, b.cfg.phaseLimit, apiOp)
				counted := b.stack.counter.reset()
				if res.failed > 0 {
					return fmt.Errorf("%s at concurrency %d: %d of %d failed, first: %w", op.name, c, res.failed, m, res.firstErr)
				}
				lat["api."+op.name] = append(lat["api."+op.name], res.lat...)
				busy["api."+op.name] += res.elapsed
				counts[op.name] = counts[op.name].add(counted)
				return nil
			}
			blocks := []func() error{rawOp, measured}
			if c == 1 {
				blocks = append([]func() error{func() error {
					res, err := b.sendRaw(ctx, fixed[k*m:(k+1)*m], 1)
					if err != nil {
						return fmt.Errorf("fixed floor: %w", err)
					}
					lat["floor.fixed"] = append(lat["floor.fixed"], res.lat...)
					return nil
				}}, blocks...)
			}
			// Alternate the order from round to round, so that no block
			// always follows another.
			if round%2 == 1 {
				slices.Reverse(blocks)
			}
			for _, block := range blocks {
				if err := block(); err != nil {
					return err
				}
			}
		}
	}
	b.recordLatency("floor.read", c, lat["floor.read"])
	b.recordLatency("floor.readpair", c, lat["floor.readpair"])
	b.figs.record(b.run, fmt.Sprintf("bound.transfer.c%d.p50", c), percentile(lat["floor.readpair"], 50)+percentile(lat["floor.transfer"], 50))
	if c == 1 {
		b.recordLatency("floor.fixed", 1, lat["floor.fixed"])
		if err := b.licenseUnits(ctx, acct, lat, counts, sample); err != nil {
			return err
		}
	}
	for _, op := range licenseOps {
		for _, kind := range []string{"floor", "api"} {
			key := kind + "." + op.name
			b.recordLatency(key, c, lat[key])
		}
		b.figs.record(b.run, fmt.Sprintf("api.%s.c%d.p50.own", op.name, c), percentile(lat["api."+op.name], 50))
		b.figs.record(b.run, fmt.Sprintf("floor.%s.c%d.ops", op.name, c), float64(len(lat["floor."+op.name]))/busy["floor."+op.name].Seconds())
		done := float64(len(lat["api."+op.name]))
		b.figs.record(b.run, fmt.Sprintf("api.%s.c%d.writes", op.name, c), float64(counts[op.name].sum(writeOps))/done)
		b.figs.record(b.run, fmt.Sprintf("api.%s.c%d.reads", op.name, c), float64(counts[op.name].sum(readOps))/done)
		read := lat["floor.read"]
		if op.name == "transfer" {
			read = lat["floor.readpair"]
		}
		b.logf("c=%-2d %-8s read p50 %5.2f ms, raw p50 %6.2f ms %5.0f/s | API p50 %6.2f ms p99 %6.2f ms %5.0f/s (%d ops) | DynamoDB: %s", c, op.name, percentile(read, 50),
			percentile(lat["floor."+op.name], 50), float64(len(lat["floor."+op.name]))/busy["floor."+op.name].Seconds(),
			percentile(lat["api."+op.name], 50), percentile(lat["api."+op.name], 99), done/busy["api."+op.name].Seconds(), len(lat["api."+op.name]),
			counts[op.name].describe())
	}
	return nil
}

// licenseChains captures, for each pair (us[i], vs[i]) of new users, the
// store's transactions of assign us[i], modify it, transfer its license to
// vs[i], and remove that license: txs[k][i] is operation k of pair i, each
// planned from the state the previous one commits.
func (b *bench) licenseChains(ctx context.Context, acct *benchAccount, us, vs []*licadmin.User) ([][]*dynamodb.TransactWriteItemsInput, error) {
	ctx = benchRequest(ctx, acct)
	txs := make([][]*dynamodb.TransactWriteItemsInput, len(licenseOps))
	for i := range us {
		chain, err := b.stack.capture(func(st *store.Store) error {
			now := time.Now().UTC()
			u, err := st.AssignLicense(ctx, acct.admin, us[i], licadmin.Eco, now)
			if err != nil {
				return err
			}
			if u, err = st.ModifyLicense(ctx, acct.admin, u, licadmin.Advanced, now); err != nil {
				return err
			}
			v, err := st.TransferLicense(ctx, acct.admin, u, vs[i], now)
			if err != nil {
				return err
			}
			_, err = st.RemoveLicense(ctx, acct.admin, v, now)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(chain) != len(licenseOps) {
			return nil, fmt.Errorf("bench: captured %d transactions for the %d license operations", len(chain), len(licenseOps))
		}
		for k := range chain {
			txs[k] = append(txs[k], chain[k])
		}
	}
	return txs, nil
}

// userReads captures the reads with which license changes read their
// caller and users, as they are through the API: the BatchGetItem of the
// admin's claim and us[i] (assign, modify, remove), and of the claim,
// us[i] and vs[i] (transfer).
func (b *bench) userReads(acct *benchAccount, us, vs []*licadmin.User) (singles, pairs []*dynamodb.BatchGetItemInput, err error) {
	db, err := b.stack.captureAll(func(st *store.Store) error {
		for i, u := range us {
			if _, _, err := st.LoadCaller(context.Background(), acct.admin.Email, u.ID); err != nil {
				return err
			}
			if _, _, err := st.LoadCaller(context.Background(), acct.admin.Email, u.ID, vs[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(db.gets) != 0 || len(db.reads) != 2*len(us) {
		return nil, nil, fmt.Errorf("bench: LoadCaller sent %d GetItem and %d BatchGetItem for %d single users and %d pairs, want one BatchGetItem each", len(db.gets), len(db.reads), len(us), len(us))
	}
	for i := range us {
		singles = append(singles, db.reads[2*i])
		pairs = append(pairs, db.reads[2*i+1])
	}
	return singles, pairs, nil
}

// apiChainOp returns the API request of operation name on pair i.
func (b *bench) apiChainOp(acct *benchAccount, name string, us, vs []*licadmin.User) func(ctx context.Context, _, i int) error {
	return func(ctx context.Context, _, i int) error {
		var err error
		switch name {
		case "assign":
			_, err = b.stack.expect(ctx, 200, "POST", "/v1/users/"+us[i].ID+"/license", acct.token, map[string]string{"tier": "eco"})
		case "modify":
			_, err = b.stack.expect(ctx, 200, "PATCH", "/v1/users/"+us[i].ID+"/license", acct.token, map[string]string{"tier": "advanced"})
		case "transfer":
			_, err = b.stack.expect(ctx, 200, "POST", "/v1/users/"+us[i].ID+"/license/transfer", acct.token, map[string]string{"toUserId": vs[i].ID})
		case "remove":
			_, err = b.stack.expect(ctx, 200, "DELETE", "/v1/users/"+vs[i].ID+"/license", acct.token, nil)
		default:
			err = fmt.Errorf("bench: unknown operation %s", name)
		}
		return err
	}
}

// raceFigures fires 200 assigns at once on a pool of 50 licenses: exactly
// 50 must succeed and 150 answer 409 no_license_available.
func (b *bench) raceFigures(ctx context.Context) error {
	n, pool := b.cfg.raceUsers, b.cfg.racePool
	b.figs.define(figureDef{ID: "race.ok", Title: "assigns that succeeded", Unit: "count",
		Meaning: fmt.Sprintf("%d concurrent assigns (one goroutine and connection each, released together) on a pool of %d pro licenses: answers 200", n, pool),
		Target:  fmt.Sprintf("= %d", pool), Check: exactly(float64(pool))})
	b.figs.define(figureDef{ID: "race.no_license", Title: "assigns refused", Unit: "count",
		Meaning: "the same race: answers 409 with code no_license_available",
		Target:  fmt.Sprintf("= %d", n-pool), Check: exactly(float64(n - pool))})
	b.figs.define(figureDef{ID: "race.pool_assigned", Title: "pool's assigned counter after the race", Unit: "count",
		Meaning: "the same race: the pool's assigned pro counter read afterwards with GET /v1/licenses",
		Target:  fmt.Sprintf("= %d", pool), Check: exactly(float64(pool))})
	acct, err := b.stack.newAccount(ctx, "race", map[licadmin.Tier]int64{licadmin.Pro: int64(pool)})
	if err != nil {
		return err
	}
	users, err := b.stack.seedUsers(ctx, acct, "race", n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.phaseLimit)
	defer cancel()
	var (
		wg      sync.WaitGroup
		release = make(chan struct{})
		mu      sync.Mutex
		ok, no  int
		other   []string
	)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			r, err := b.stack.call(ctx, "POST", "/v1/users/"+u.ID+"/license", acct.token, map[string]string{"tier": "pro"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				other = append(other, err.Error())
			case r.status == 200:
				ok++
			case r.status == 409 && r.code == "no_license_available":
				no++
			default:
				other = append(other, fmt.Sprintf("%d %s", r.status, r.code))
			}
		}()
	}
	start := time.Now()
	close(release)
	wg.Wait()
	elapsed := time.Since(start)
	r, err := b.stack.expect(ctx, 200, "GET", "/v1/licenses", acct.token, nil)
	if err != nil {
		return err
	}
	p, err := decodePool(r.body)
	if err != nil {
		return err
	}
	b.figs.record(b.run, "race.ok", float64(ok))
	b.figs.record(b.run, "race.no_license", float64(no))
	b.figs.record(b.run, "race.pool_assigned", float64(p.Tier(licadmin.Pro).Assigned))
	if len(other) > 0 {
		b.figs.note("race.ok", "run %d: %d other answers, such as %s", b.run+1, len(other), other[0])
	}
	b.logf("race: %d assigns on a pool of %d in %s: %d OK, %d no_license_available, %d other; pool assigned %d, available %d",
		n, pool, elapsed.Round(time.Millisecond), ok, no, len(other), p.Tier(licadmin.Pro).Assigned, p.Tier(licadmin.Pro).Available)
	return nil
}

// longRunFigures runs assign/remove at concurrency 16 on one pool for
// cfg.longRun, in alternating slices: raw transactions (the floor), then
// the same through the API, and so on. Each worker alternates assign and
// remove on its own user.
func (b *bench) longRunFigures(ctx context.Context) error {
	const c = 16
	b.figs.define(figureDef{ID: "floor.long.ops", Title: "sustained raw assign/remove per second at concurrency 16", Unit: "ops/s",
		Meaning: fmt.Sprintf("floor: the store's assign and remove transactions alternating, sent directly with the SDK by 16 workers on one pool, %s in slices alternating with the API's: transactions per second", b.cfg.longRun/2)})
	b.figs.define(figureDef{ID: "long.ops", Title: "sustained assign/remove per second at concurrency 16", Unit: "ops/s",
		Meaning: fmt.Sprintf("assign and remove alternating through the API, 16 workers on one pool, %s in slices alternating with the floor's: operations per second", b.cfg.longRun/2),
		Floor:   "floor.long.ops", Target: "ratio >= 0.8", Check: ratioAtLeast(0.8)})
	b.figs.define(figureDef{ID: "long.p99", Title: "assign/remove p99 in the long run", Unit: "ms",
		Meaning: "the same long run: p99 latency of its operations", Floor: "floor.long.p99"})
	b.figs.define(figureDef{ID: "floor.long.p99", Title: "raw assign/remove p99 in the long run", Unit: "ms",
		Meaning: "the floor's long run: p99 latency of its transactions"})
	b.figs.define(figureDef{ID: "long.failed", Title: "failed operations in the long run", Unit: "count",
		Meaning: "the same long run: operations that did not answer 200", Target: "= 0", Check: exactly(0)})
	acct, err := b.stack.newAccount(ctx, "long", map[licadmin.Tier]int64{licadmin.Eco: 1_000_000})
	if err != nil {
		return err
	}
	rawUsers, err := b.stack.seedUsers(ctx, acct, "long-raw", c)
	if err != nil {
		return err
	}
	apiUsers, err := b.stack.seedUsers(ctx, acct, "long-api", c)
	if err != nil {
		return err
	}
	reqCtx := benchRequest(ctx, acct)
	// The raw workers' users as the store last committed them.
	state := make([]*licadmin.User, c)
	copy(state, rawUsers)
	// An operation that started runs to its end even when its slice's time
	// is up: cut half-way, it could commit without the worker knowing.
	rawOp := func(ctx context.Context, w, _ int) error {
		ctx = context.WithoutCancel(ctx)
		u := state[w]
		var next *licadmin.User
		txs, err := b.stack.capture(func(st *store.Store) (err error) {
			if u.License == nil {
				next, err = st.AssignLicense(reqCtx, acct.admin, u, licadmin.Eco, time.Now().UTC())
			} else {
				next, err = st.RemoveLicense(reqCtx, acct.admin, u, time.Now().UTC())
			}
			return err
		})
		if err != nil {
			return err
		}
		if _, err := b.stack.raw.TransactWriteItems(ctx, txs[0]); err != nil {
			return err
		}
		state[w] = next
		return nil
	}
	licensed := make([]bool, c)
	apiOp := func(ctx context.Context, w, _ int) error {
		ctx = context.WithoutCancel(ctx)
		method := "POST"
		if licensed[w] {
			method = "DELETE"
		}
		_, err := b.stack.expect(ctx, 200, method, "/v1/users/"+apiUsers[w].ID+"/license", acct.token, licenseBody(method, licadmin.Eco))
		if err == nil {
			licensed[w] = !licensed[w]
		}
		return err
	}
	slice := b.cfg.longSlice
	var raw, api driveResult
	for spent := time.Duration(0); spent < b.cfg.longRun; spent += 2 * slice {
		for _, part := range []struct {
			res *driveResult
			op  func(context.Context, int, int) error
		}{{&raw, rawOp}, {&api, apiOp}} {
			r := drive(ctx, c, 10_000_000, slice, part.op)
			part.res.lat = append(part.res.lat, r.lat...)
			part.res.elapsed += r.elapsed
			part.res.failed += r.failed
			if part.res.firstErr == nil {
				part.res.firstErr = r.firstErr
			}
		}
	}
	if raw.failed > 0 {
		return fmt.Errorf("long run: raw transactions failed: %w", raw.firstErr)
	}
	b.figs.record(b.run, "floor.long.ops", raw.opsPerSecond())
	b.figs.record(b.run, "floor.long.p99", percentile(raw.lat, 99))
	b.figs.record(b.run, "long.ops", api.opsPerSecond())
	b.figs.record(b.run, "long.p99", percentile(api.lat, 99))
	b.figs.record(b.run, "long.failed", float64(api.failed))
	if api.failed > 0 {
		b.figs.note("long.failed", "run %d: first failure: %v", b.run+1, api.firstErr)
	}
	b.logf("long run at c=16: raw %d transactions in %s (%.0f/s, p99 %.1f ms); API %d operations in %s (%.0f/s, p50 %.2f ms, p99 %.1f ms, %d failed)",
		len(raw.lat), raw.elapsed.Round(time.Millisecond), raw.opsPerSecond(), percentile(raw.lat, 99),
		len(api.lat), api.elapsed.Round(time.Millisecond), api.opsPerSecond(), percentile(api.lat, 50), percentile(api.lat, 99), api.failed)
	return nil
}

// gainsLicense names the license operations after which a user holds a
// license it did not: the stream function then queues its confirmation.
var gainsLicense = map[string]bool{"assign": true, "transfer": true}

// confirmationUnits returns the write units of what the stream function
// writes for a license a user gained, outside the request: the
// confirmation's outbox put (notify.Service.LicenseGained) and its entry
// in the sweeper's index, captured from the store for a user with the
// longest tier name.
func (b *bench) confirmationUnits(ctx context.Context) (float64, error) {
	db, err := b.stack.captureAll(func(st *store.Store) error {
		now := time.Now().UTC()
		u := &licadmin.User{ID: ulid.Make().String(), AccountID: ulid.Make().String(), Email: "jeanne.dupont@bench.example",
			FirstName: "Jeanne", Language: "fr", License: &licadmin.License{Tier: licadmin.Advanced, AssignedAt: now}}
		o := store.RecipientOutbox(licadmin.EmailLicenseAssigned, u, now)
		o.ID = "gained-" + strings.Repeat("0", 32)
		_, err := st.PutOutboxOnce(ctx, o)
		return err
	})
	if err != nil {
		return 0, err
	}
	if len(db.puts) != 1 {
		return 0, fmt.Errorf("bench: the confirmation's outbox put was %d requests, want 1 PutItem", len(db.puts))
	}
	wcu, _, err := b.stack.sizes.units(ctx, b.stack.raw, b.stack.table, requestCapacity(db.puts[0], &dynamodb.PutItemOutput{}))
	return wcu, err
}

// searchUnits returns the write units of the stream function's update of
// the search index after a change of a user from before to after
// (store.ApplySearchIndex, captured from the store): the entries carry the
// user's view, so any license change rewrites them all, with the user's
// marker, in one transaction.
func (b *bench) searchUnits(ctx context.Context, before, after *licadmin.User) (float64, error) {
	txs, err := b.stack.capture(func(st *store.Store) error {
		return st.ApplySearchIndex(ctx, store.SearchChange{UserID: after.ID, Sequence: "1",
			Seen: []*licadmin.User{before}, Final: after}, time.Now().UTC())
	})
	if err != nil {
		return 0, err
	}
	if len(txs) != 1 {
		return 0, fmt.Errorf("bench: a license change's search index update was %d transactions, want 1", len(txs))
	}
	wcu, _, err := b.stack.sizes.units(ctx, b.stack.raw, b.stack.table, transactCapacity(txs...))
	return wcu, err
}

// streamUnits returns, per license operation, the write units the stream
// function spends after the change committed: the search index of each
// user changed (searchUnits), and for an operation that gives a user a
// license its confirmation (confirmationUnits). u is a user of the
// benchmark as seeded, without a license, and c its admin; the users after
// each change are the store's own (captured, nothing sent).
func (b *bench) streamUnits(ctx context.Context, c *licadmin.Caller, u *licadmin.User) (map[string]float64, error) {
	confirm, err := b.confirmationUnits(ctx)
	if err != nil {
		return nil, err
	}
	// The transfer's target: another user like u.
	to := *u
	to.ID = ulid.Make().String()
	var eco, advanced, removed, gained *licadmin.User
	if _, err := b.stack.capture(func(st *store.Store) error {
		now := time.Now().UTC()
		var err error
		if eco, err = st.AssignLicense(ctx, c, u, licadmin.Eco, now); err != nil {
			return err
		}
		if advanced, err = st.ModifyLicense(ctx, c, eco, licadmin.Advanced, now); err != nil {
			return err
		}
		if removed, err = st.RemoveLicense(ctx, c, advanced, now); err != nil {
			return err
		}
		gained, err = st.TransferLicense(ctx, c, advanced, &to, now)
		return err
	}); err != nil {
		return nil, err
	}
	// A transfer's former holder ends as a remove leaves it.
	changes := map[string][][2]*licadmin.User{
		"assign":   {{u, eco}},
		"modify":   {{eco, advanced}},
		"remove":   {{advanced, removed}},
		"transfer": {{advanced, removed}, {&to, gained}},
	}
	out := map[string]float64{}
	for op, cs := range changes {
		for _, c := range cs {
			wcu, err := b.searchUnits(ctx, c[0], c[1])
			if err != nil {
				return nil, err
			}
			out[op] += wcu
		}
		if gainsLicense[op] {
			out[op] += confirm
		}
	}
	return out, nil
}

// licenseUnits records, from the operations at concurrency 1, each
// operation's write and read units (with what the stream function writes
// after it: streamUnits, for a user like sample), its p50 against the
// fixed floor, and the cost of a million operations (a quarter of each).
func (b *bench) licenseUnits(ctx context.Context, acct *benchAccount, lat map[string][]time.Duration, counts map[string]requestCounts, sample *licadmin.User) error {
	stream, err := b.streamUnits(ctx, acct.admin, sample)
	if err != nil {
		return err
	}
	total := 0.0
	var parts []string
	for _, op := range licenseOps {
		done := float64(len(lat["api."+op.name]))
		wcu, rcu, err := b.stack.sizes.units(ctx, b.stack.raw, b.stack.table, counts[op.name].units)
		if err != nil {
			return err
		}
		wcu, rcu = wcu/done, rcu/done
		request := wcu
		wcu += stream[op.name]
		p50 := percentile(lat["api."+op.name], 50)
		b.figs.record(b.run, op.name+".wcu", wcu)
		b.figs.record(b.run, op.name+".rcu", rcu)
		b.figs.record(b.run, fmt.Sprintf("api.%s.c1.p50.fixed", op.name), p50)
		mb, err := functionMemoryMB(licenseFunctions[op.name])
		if err != nil {
			return err
		}
		total += costOf(wcu, rcu, p50/1000, mb, 1) / float64(len(licenseOps))
		parts = append(parts, fmt.Sprintf("%s %.1f WCU (request %.1f, stream %.1f) %.1f RCU, p50 %.2f ms = %.2f x fixed", op.name, wcu, request, stream[op.name], rcu, p50, p50/percentile(lat["floor.fixed"], 50)))
	}
	b.figs.record(b.run, "cost.license.million", total*1e6)
	b.logf("c=1  fixed floor p50 %.2f ms; %s; $%.2f per million operations", percentile(lat["floor.fixed"], 50), strings.Join(parts, "; "), total*1e6)
	return nil
}

// licenseFunctions names the function of each license operation, for its
// memory.
var licenseFunctions = map[string]string{
	"assign": "AssignLicenseFunction", "modify": "ModifyLicenseFunction",
	"transfer": "TransferLicenseFunction", "remove": "RemoveLicenseFunction",
}
