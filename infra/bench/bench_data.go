package bench

import (
	"context"
	"fmt"
	"time"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// batchQueryFigures measures the BatchWriteItem floor (the rows/s an
// import could reach at best) and the Query floor (a page of users), and
// the page of users through the API next to it.
func (b *bench) batchQueryFigures(ctx context.Context) error {
	b.figs.define(figureDef{ID: "floor.batch.rows", Title: "BatchWriteItem stream of user rows", Unit: "rows/s",
		Meaning: fmt.Sprintf("floor: the items an import writes, as the store's CommitImportChunk puts them (per row the user item and email claim, per chunk of %d rows one audit record), put with BatchWriteItem, 25 items per call, one call at a time: rows (users) per second", importChunkRows)})
	b.figs.define(figureDef{ID: "floor.query.p50", Title: "Query of a page of users", Unit: "ms",
		Meaning: "floor: the store's Query of one page of 50 users (GSI1, the exact input ListUsers sends) sent directly with the SDK, one at a time, in turn with the requests compared with it (the list's and the search's pages): p50 latency"})
	b.figs.define(figureDef{ID: "api.list.c1.p50", Title: "GET /v1/users?limit=50 p50", Unit: "ms",
		Meaning: "a page of 50 users through the local API, sequentially: p50 latency", Floor: "floor.query.p50"})
	b.figs.define(figureDef{ID: "api.list.c1.reads", Title: "list users DynamoDB reads per request", Unit: "req/op",
		Meaning: "GET /v1/users?limit=50: DynamoDB read requests per request (every attempt), counted by SDK middleware"})
	b.figs.define(figureDef{ID: "list.rcu", Title: "list users read units per request", Unit: "RCU/op",
		Meaning: "GET /v1/users?limit=50: read capacity units per request, computed from the requests by DynamoDB's rules (bench_capacity.go; the index Query is eventually consistent)"})
	b.figs.define(figureDef{ID: "user.create.wcu", Title: "create user write units", Unit: "WCU/op",
		Meaning: "write capacity units of the store's CreateUser transaction (captured from POST /v1/users' code), by DynamoDB's rules, with the user's entry in gsi1, plus the stream function's transaction of the new user's search index entries and marker"})
	b.figs.define(figureDef{ID: "import.row.wcu", Title: "import write units per row", Unit: "WCU/row",
		Meaning: fmt.Sprintf("write capacity units per row of the store's CommitImportChunk transactions for full chunks of %d rows without licenses (captured), by DynamoDB's rules: user, email claim, the chunk's audit record, checkpoint and domain checks, twice inside a transaction, and each user's entry in gsi1 once; plus the stream function's transaction of each new user's search index entries and marker", importChunkRows)})

	acct, err := b.stack.newAccount(ctx, "batch", nil)
	if err != nil {
		return err
	}
	rows := b.cfg.batchRows
	items, err := b.stack.importItems(ctx, acct, "batch", rows)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := batchWrite(ctx, b.stack.raw, b.stack.table, items, 1); err != nil {
		return err
	}
	elapsed := time.Since(start)
	b.figs.record(b.run, "floor.batch.rows", float64(rows)/elapsed.Seconds())
	b.logf("floor: BatchWriteItem of %d rows (%d items) in %s: %.0f rows/s", rows, len(items), elapsed.Round(time.Millisecond), float64(rows)/elapsed.Seconds())

	// The users of the batch account make more than one page. The floor,
	// the list and the search (when measured) are sent in turn.
	floor, err := b.pageQuery("floor.query", "the page query", func(st *store.Store) error {
		_, _, err := st.ListUsers(ctx, acct.id, licadmin.UserFilter{}, 50, nil)
		return err
	})
	if err != nil {
		return err
	}
	ops := []pageOp{floor, {id: "api.list.c1", what: "list users", api: true, op: func(ctx context.Context) error {
		_, err := b.stack.expect(ctx, 200, "GET", "/v1/users?limit=50", acct.token, nil)
		return err
	}}}
	if b.search != nil {
		searchOps, err := b.search.pageOps(ctx)
		if err != nil {
			return err
		}
		ops = append(ops, searchOps...)
	}
	results, counts, err := b.interleaved(ctx, ops)
	if err != nil {
		return err
	}
	res := results[1]
	_, listRCU, err := b.stack.sizes.units(ctx, b.stack.raw, b.stack.table, counts[1].units)
	if err != nil {
		return err
	}
	b.figs.record(b.run, "list.rcu", listRCU/float64(len(res.lat)))
	floorP50 := percentile(results[0].lat, 50)
	if b.search != nil {
		b.logf("GET /v1/users?limit=50&q=%s on %d users p50 %.2f ms (its Query %.2f ms), DynamoDB: %s", searchQuery, b.cfg.searchUsers(), percentile(results[3].lat, 50), percentile(results[2].lat, 50), counts[3].describe())
	}

	// Write units of a user's creation and of import rows, from the
	// store's transactions.
	const unitRows = 10
	// Each new user's search index entries are written by the stream
	// function, after the request.
	users, _, created, err := b.stack.userTxs(ctx, acct, fmt.Sprintf("units-r%d", b.run), unitRows)
	if err != nil {
		return err
	}
	createWCU, _, err := b.stack.sizes.units(ctx, b.stack.raw, b.stack.table, transactCapacity(created...))
	if err != nil {
		return err
	}
	searchWCU, err := b.searchUnits(ctx, nil, users[0])
	if err != nil {
		return err
	}
	b.figs.record(b.run, "user.create.wcu", createWCU/unitRows+searchWCU)
	_, chunks, err := b.stack.importTxs(ctx, acct, fmt.Sprintf("units-import-r%d", b.run), 2*importChunkRows)
	if err != nil {
		return err
	}
	importWCU, _, err := b.stack.sizes.units(ctx, b.stack.raw, b.stack.table, transactCapacity(chunks...))
	if err != nil {
		return err
	}
	b.figs.record(b.run, "import.row.wcu", importWCU/float64(2*importChunkRows)+searchWCU)
	b.logf("units: list %.1f RCU per page; create user %.1f WCU; import %.2f WCU per row; each plus %.1f WCU of the new user's search index (stream)",
		listRCU/float64(len(res.lat)), createWCU/unitRows, importWCU/float64(2*importChunkRows), searchWCU)
	b.logf("query floor p50 %.2f ms; GET /v1/users?limit=50 p50 %.2f ms, DynamoDB: %s", floorP50, percentile(res.lat, 50), counts[1].describe())
	return nil
}

// pageQuery captures the one Query that call (a store's page of 50 users)
// sends, and returns the request that sends it directly with the SDK, as
// figure id; what names it in errors.
func (b *bench) pageQuery(id, what string, call func(st *store.Store) error) (pageOp, error) {
	db, err := b.stack.captureAll(call)
	if err != nil {
		return pageOp{}, err
	}
	if len(db.queries) != 1 {
		return pageOp{}, fmt.Errorf("bench: %s: the store sent %d queries, want 1", what, len(db.queries))
	}
	q := db.queries[0]
	return pageOp{id: id, what: what, op: func(ctx context.Context) error {
		out, err := b.stack.raw.Query(ctx, q)
		if err == nil && len(out.Items) < 50 {
			err = fmt.Errorf("%s returned %d items, want at least 50", what, len(out.Items))
		}
		return err
	}}, nil
}
