package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
	"licenseadmin/shared/user"
)

// benchSearch is the data set of the search figure, written once per
// invocation and measured in every run: an account of searchUsers users
// named as people are (first and last names drawn from short lists, some
// with accents; emails first.last.N@domain), so that the measured search
// finds users by all three fields.
type benchSearch struct {
	b    *bench
	acct *benchAccount
}

// searchQuery is the measured search: a prefix common in the names and
// emails of the data set (Jan, Jane, Janet, Janine, Jansen, Janssen…), so
// that every page is full and many users are found by several fields.
const searchQuery = "jan"

// searchUsers is the size of the search figure's account.
func (c benchConfig) searchUsers() int {
	if c.quick {
		return 5_000
	}
	return 100_000
}

var (
	benchFirstNames = []string{"Jan", "Jane", "Janet", "Janine", "Anna", "Élodie", "Zoë", "Bob", "Karl", "Marie",
		"Jean", "Paul", "Sophie", "Lucas", "Emma", "Hugo", "Léa", "Louis", "Chloé", "Noah",
		"Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Dennis", "Barbara", "Frances", "Edsger"}
	benchLastNames = []string{"Jansen", "Janssen", "Janvier", "Doe", "Dörr", "Müller", "Martin", "Bernard", "Dubois", "Thomas",
		"Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel",
		"Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Ritchie", "Liskov", "Allen", "Dijkstra"}
)

// prepareSearch writes the data set: the users' items exactly as POST
// /v1/users would (validation, defaults), and their search index entries
// as the stream function derives them (store.SearchIndexItems), put with
// BatchWriteItem in slices: the bench runs no stream, and delivering
// 100,000 users' changes through the local stream would take minutes.
func (b *bench) prepareSearch(ctx context.Context) (*benchSearch, error) {
	acct, err := b.stack.newAccount(ctx, "search", nil)
	if err != nil {
		return nil, err
	}
	n := b.cfg.searchUsers()
	start := time.Now()
	const slice = 5_000
	for from := 0; from < n; from += slice {
		txs, err := b.stack.capture(func(st *store.Store) error {
			svc := seedUsers(acct, st)
			ctx := benchRequest(ctx, acct)
			for i := from; i < min(n, from+slice); i++ {
				first := benchFirstNames[i%len(benchFirstNames)]
				last := benchLastNames[(i/len(benchFirstNames))%len(benchLastNames)]
				_, err := svc.Create(ctx, licadmin.Request{Email: acct.admin.Email}, user.NewUser{
					Email:     fmt.Sprintf("%s.%s.%d@%s", licadmin.SearchKey(first), licadmin.SearchKey(last), i, acct.domain),
					FirstName: first,
					LastName:  last,
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		items := puts(txs, "USER#", "EMAIL#")
		for _, it := range puts(txs, "USER#") {
			items = append(items, store.SearchIndexItems(it)...)
		}
		if err := batchWrite(ctx, b.stack.raw, b.stack.table, items, 4); err != nil {
			return nil, err
		}
	}
	b.logf("search: %d users written in %s", n, time.Since(start).Round(time.Second))
	return &benchSearch{b: b, acct: acct}, nil
}

// pageOps defines the search's page figures and returns their requests:
// the store's Query of a search page, sent directly, and the search
// through the local API, sequentially. The data step sends them in turn
// with the plain list's page and its Query (floor.query.p50), so that the
// search and its floor are measured at the same moments.
func (s *benchSearch) pageOps(ctx context.Context) ([]pageOp, error) {
	b := s.b
	n := b.cfg.searchUsers()
	b.figs.define(figureDef{ID: "search.c1.p50", Title: "GET /v1/users?q=jan&limit=50 p50", Unit: "ms",
		Meaning: fmt.Sprintf("a search (q=%s: first names, last names and emails start with it) on an account of %d users through the local API, sequentially, every page full, sent in turn with the plain list's page Query: p50 latency, against that Query", searchQuery, n),
		Floor:   "floor.query.p50", Target: "ratio <= 1.5", Check: ratioAtMost(1.5)})
	b.figs.define(figureDef{ID: "search.c1.reads", Title: "search DynamoDB reads per request", Unit: "req/op",
		Meaning: "GET /v1/users?q=jan&limit=50: DynamoDB read requests per request (every attempt), counted by SDK middleware"})
	b.figs.define(figureDef{ID: "search.query.p50", Title: "search Query p50", Unit: "ms",
		Meaning: "the store's Query of one search page of 50 (q=jan, the exact input SearchUsers sends) sent directly with the SDK, sequentially: p50 latency, against the Query of one page of the plain list", Floor: "floor.query.p50"})
	query, err := b.pageQuery("search.query", "the search query", func(st *store.Store) error {
		_, _, err := st.SearchUsers(ctx, s.acct.id, licadmin.UserFilter{Search: searchQuery}, 50, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	path := "/v1/users?limit=50&q=" + searchQuery
	return []pageOp{query, {id: "search.c1", what: "search", api: true, op: func(ctx context.Context) error {
		r, err := b.stack.expect(ctx, 200, "GET", path, s.acct.token, nil)
		if err != nil {
			return err
		}
		var p struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			return err
		}
		if len(p.Items) != 50 {
			return fmt.Errorf("the search page has %d users, want 50", len(p.Items))
		}
		return nil
	}}}, nil
}

// searchWriteRows is how many users each block of the write-cost
// measurement writes, and searchWriteBlocks how many blocks each kind
// gets, alternating.
const (
	searchWriteRows   = 250
	searchWriteBlocks = 4
)

// writeCostFigures measures what the search index costs the writes of
// users: the items an import puts for a user (the user item and its email
// claim) written with BatchWriteItem, then each user's search index
// entries written as the stream function writes them for a new user
// (store.ApplySearchIndex: one transaction of the marker and the three
// entries), one user after another; against the same rows without the
// index, in alternating blocks so that both see the same machine. In AWS
// the index's writes run in the stream function, after the request: they
// cost write units, not the request's latency.
func (s *benchSearch) writeCostFigures(ctx context.Context) error {
	b := s.b
	b.figs.define(figureDef{ID: "search.writes.with", Title: "user rows written, with the search index", Unit: "rows/s",
		Meaning: fmt.Sprintf("BatchWriteItem of a user item and its email claim per row (the import's items), then the row's search index entries as the stream function writes them (one transaction of the user's marker and three entries, users one after another), %d blocks of %d rows alternating with the next figure's", searchWriteBlocks, searchWriteRows)})
	b.figs.define(figureDef{ID: "search.writes.without", Title: "user rows written, without the search index", Unit: "rows/s",
		Meaning: "the same rows without their search index entries (as before the search)"})
	b.figs.define(figureDef{ID: "search.writes.ratio", Title: "write rate with / without the search index", Unit: "ratio",
		Meaning: "search.writes.with / search.writes.without: what the index costs every write of users (create, edit, license change, import) on DynamoDB Local, counting the stream function's writes"})
	acct, err := b.stack.newAccount(ctx, "writecost", nil)
	if err != nil {
		return err
	}
	st := &store.Store{DB: b.stack.raw, Table: b.stack.table}
	var took [2]time.Duration
	for block := range searchWriteBlocks * 2 {
		_, items, err := b.stack.userItems(ctx, acct, fmt.Sprintf("w%d-%d", b.run, block), searchWriteRows, "USER#", "EMAIL#")
		if err != nil {
			return err
		}
		start := time.Now()
		if err := batchWrite(ctx, b.stack.raw, b.stack.table, items, 1); err != nil {
			return err
		}
		if block%2 == 0 {
			for i, it := range items {
				if store.ItemKind(it) != store.KindUser {
					continue
				}
				u := store.UserFromImage(it)
				seq := fmt.Sprintf("%d%06d", time.Now().UnixMilli(), i)
				if err := st.ApplySearchIndex(ctx, store.SearchChange{UserID: u.ID, Sequence: seq, Seen: []*licadmin.User{nil, u}, Final: u}, time.Now()); err != nil {
					return err
				}
			}
		}
		took[block%2] += time.Since(start)
	}
	rows := float64(searchWriteBlocks * searchWriteRows)
	with, wo := rows/took[0].Seconds(), rows/took[1].Seconds()
	b.figs.record(b.run, "search.writes.with", with)
	b.figs.record(b.run, "search.writes.without", wo)
	b.figs.record(b.run, "search.writes.ratio", with/wo)
	b.logf("user rows: %.0f/s with the search index, %.0f/s without (ratio %.2f)", with, wo, with/wo)
	return nil
}
