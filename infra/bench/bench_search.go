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
// that every page is full and comes from all three indexes.
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
// /v1/users would (validation, defaults, search keys), put with
// BatchWriteItem in slices.
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
		if err := batchWrite(ctx, b.stack.raw, b.stack.table, puts(txs, "USER#", "EMAIL#"), 4); err != nil {
			return nil, err
		}
	}
	b.logf("search: %d users written in %s", n, time.Since(start).Round(time.Second))
	return &benchSearch{b: b, acct: acct}, nil
}

// figures measures the search through the local API, sequentially, next
// to the page of the plain list's Query (floor.query.p50, measured by the
// data step of the same run).
func (s *benchSearch) figures(ctx context.Context) error {
	b := s.b
	n := b.cfg.searchUsers()
	b.figs.define(figureDef{ID: "search.c1.p50", Title: "GET /v1/users?q=jan&limit=50 p50", Unit: "ms",
		Meaning: fmt.Sprintf("a search (q=%s: first names, last names and emails start with it) on an account of %d users through the local API, sequentially, every page full: p50 latency, against the Query of one page of the plain list", searchQuery, n),
		Floor:   "floor.query.p50", Target: "ratio <= 1.5", Check: ratioAtMost(1.5)})
	b.figs.define(figureDef{ID: "search.c1.reads", Title: "search DynamoDB reads per request", Unit: "req/op",
		Meaning: "GET /v1/users?q=jan&limit=50: DynamoDB read requests per request (every attempt), counted by SDK middleware"})
	path := "/v1/users?limit=50&q=" + searchQuery
	res, counts, err := b.sequential(ctx, "search.c1", "search", func(ctx context.Context) error {
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
	})
	if err != nil {
		return err
	}
	b.logf("GET %s on %d users p50 %.2f ms, DynamoDB: %s", path, n, percentile(res.lat, 50), counts.describe())
	return s.writeCostFigures(ctx)
}

// searchWriteRows is how many users each block of the write-cost
// measurement writes, and searchWriteBlocks how many blocks each kind
// gets, alternating.
const (
	searchWriteRows   = 250
	searchWriteBlocks = 4
)

// writeCostFigures measures what the search indexes cost the writes of
// users: the items an import puts for a user (the user item, with its
// search keys, and its email claim) written with BatchWriteItem, and the
// same items without the search keys, which no search index then holds,
// in alternating blocks so that both see the same machine. DynamoDB Local
// maintains indexes as DynamoDB does (each GSI an extra write of the
// item); the ratio is what they cost in time here.
func (s *benchSearch) writeCostFigures(ctx context.Context) error {
	b := s.b
	b.figs.define(figureDef{ID: "search.writes.with", Title: "user rows written, with the search indexes", Unit: "rows/s",
		Meaning: fmt.Sprintf("BatchWriteItem of a user item and its email claim per row (the import's items), into the table of template.yaml (gsi1 and the three search indexes), %d blocks of %d rows alternating with the next figure's", searchWriteBlocks, searchWriteRows)})
	b.figs.define(figureDef{ID: "search.writes.without", Title: "user rows written, without the search indexes", Unit: "rows/s",
		Meaning: "the same rows without their search keys, so that no search index holds them (gsi1 only, as before the search)"})
	b.figs.define(figureDef{ID: "search.writes.ratio", Title: "write rate with / without the search indexes", Unit: "ratio",
		Meaning: "search.writes.with / search.writes.without: what the indexes cost every write of users (create, edit, license change, import) on DynamoDB Local"})
	acct, err := b.stack.newAccount(ctx, "writecost", nil)
	if err != nil {
		return err
	}
	var took [2]time.Duration
	for block := range searchWriteBlocks * 2 {
		_, items, err := b.stack.userItems(ctx, acct, fmt.Sprintf("w%d-%d", b.run, block), searchWriteRows, "USER#", "EMAIL#")
		if err != nil {
			return err
		}
		if block%2 == 1 {
			// Without its search keys, a user item is in none of the
			// search indexes (a GSI holds only the items that have its
			// key): what the table would cost without them.
			for _, it := range items {
				delete(it, store.GSISearchEmail)
				delete(it, store.GSISearchFirstName)
				delete(it, store.GSISearchLastName)
			}
		}
		start := time.Now()
		if err := batchWrite(ctx, b.stack.raw, b.stack.table, items, 1); err != nil {
			return err
		}
		took[block%2] += time.Since(start)
	}
	rows := float64(searchWriteBlocks * searchWriteRows)
	with, wo := rows/took[0].Seconds(), rows/took[1].Seconds()
	b.figs.record(b.run, "search.writes.with", with)
	b.figs.record(b.run, "search.writes.without", wo)
	b.figs.record(b.run, "search.writes.ratio", with/wo)
	b.logf("user rows: %.0f/s with the search indexes, %.0f/s without (ratio %.2f)", with, wo, with/wo)
	return nil
}
