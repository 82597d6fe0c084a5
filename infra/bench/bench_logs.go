package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// benchLogs is the data set of the log figures, written once per
// invocation (it takes a while) and measured in every run: an account of
// cfg.statsUsers users, each with one usage event recorded by the store's
// ingestion (log entry and monthly counters), and one user, heavy, with
// cfg.logEntries more log entries in its current log generation.
type benchLogs struct {
	b     *bench
	acct  *benchAccount
	users []*licadmin.User
	// heavy has the log entries; light has none; heavyTo and lightTo take
	// their licenses in transfers.
	heavy, heavyTo, light, lightTo *licadmin.User
	// heavyGen is the log generation that holds heavy's entries, and
	// heavyPK their partition key.
	heavyGen int64
	heavyPK  string
	// statsBase is the items GET /v1/stats read before the heavy user's
	// entries were written.
	statsBase float64
	// statsRCU is the read units per user of the last GET /v1/stats read.
	statsRCU float64
}

// logWriteWorkers is how many BatchWriteItem calls write log entries at
// once: two wrote 1.6 times as many entries per second as one here, four no
// more than two.
const logWriteWorkers = 2

// usageEvent returns the i-th synthetic usage event of u.
func usageEvent(acct *benchAccount, u *licadmin.User, i int, at time.Time) *licadmin.UsageEvent {
	return &licadmin.UsageEvent{
		ID:         ulid.Make().String(),
		AccountID:  acct.id,
		UserID:     u.ID,
		Type:       licadmin.EventTypes[i%len(licadmin.EventTypes)],
		At:         at,
		MessageRef: fmt.Sprintf("msg-%d", i),
		Recipients: []string{"recipient@example.org"},
		Bytes:      48_000,
		IP:         "192.0.2.10",
	}
}

// prepareLogs writes the data set.
func (b *bench) prepareLogs(ctx context.Context) (*benchLogs, error) {
	start := time.Now()
	l := &benchLogs{b: b}
	var err error
	if l.acct, err = b.stack.newAccount(ctx, "logs", map[licadmin.Tier]int64{licadmin.Eco: 1_000_000}); err != nil {
		return nil, err
	}
	if l.users, err = b.stack.seedUsers(ctx, l.acct, "logs", max(b.cfg.statsUsers, 4)); err != nil {
		return nil, err
	}
	l.heavy, l.heavyTo, l.light, l.lightTo = l.users[0], l.users[1], l.users[2], l.users[3]
	l.heavyGen = l.heavy.LogGeneration

	// One event per user through the store's ingestion (no queue time:
	// its claim, which carries the entry), and its log entry and counters
	// as the recording function writes them.
	st := &store.Store{DB: b.stack.raw, Table: b.stack.table, NewID: func() string { return ulid.Make().String() }}
	now := time.Now().UTC()
	res := drive(ctx, 8, len(l.users), b.cfg.phaseLimit, func(ctx context.Context, _, i int) error {
		u := l.users[i]
		ev := usageEvent(l.acct, u, i, now.Add(-time.Duration(i)*time.Second))
		db, err := b.stack.captureAll(func(st *store.Store) error {
			return errors.Join(st.RecordUsage(ctx, []store.UsageWrite{{Event: ev, User: u}}, now)...)
		})
		if err != nil {
			return err
		}
		claims := batchPuts(db.batches, "USAGE#")
		if err := batchWriteChunk(ctx, b.stack.raw, b.stack.table, claims); err != nil {
			return err
		}
		if err := st.WriteLogEntries(ctx, logEntries(claims)); err != nil {
			return err
		}
		var c licadmin.Counters
		c.Count(ev.Type, ev.Bytes)
		return st.AddUsageCount(ctx, store.UsageCount{UserID: u.ID, AccountID: l.acct.id, Month: ev.At.Format(licadmin.MonthLayout),
			FirstSequence: "1", LastSequence: "1", Counters: c}, "")
	})
	if res.failed > 0 {
		return nil, fmt.Errorf("record usage: %w", res.firstErr)
	}
	if l.statsBase, err = l.statsItems(ctx); err != nil {
		return nil, err
	}

	// The heavy user's entries: the log item of each event exactly as
	// RecordUsage builds it (carried by a claim here), put with
	// BatchWriteItem a chunk at a time.
	const chunk = 2000
	for done := 0; done < b.cfg.logEntries; done += chunk {
		n := min(chunk, b.cfg.logEntries-done)
		db, err := b.stack.captureAll(func(st *store.Store) error {
			var writes []store.UsageWrite
			for i := done; i < done+n; i++ {
				writes = append(writes, store.UsageWrite{Event: usageEvent(l.acct, l.heavy, i, now.Add(-time.Duration(i)*time.Second)), User: l.heavy})
			}
			return errors.Join(st.RecordUsage(ctx, writes, now)...)
		})
		if err != nil {
			return nil, err
		}
		items := logEntries(batchPuts(db.batches, "USAGE#"))
		if len(items) != n {
			return nil, fmt.Errorf("bench: RecordUsage put %d log items for %d events (pk LOG#...): update the benchmark to the log item's shape", len(items), n)
		}
		pk, _ := items[0]["pk"].(*types.AttributeValueMemberS)
		if pk == nil || (l.heavyPK != "" && pk.Value != l.heavyPK) {
			return nil, fmt.Errorf("bench: the heavy user's log items are not in one partition")
		}
		l.heavyPK = pk.Value
		if err := batchWrite(ctx, b.stack.raw, b.stack.table, items, logWriteWorkers); err != nil {
			return nil, err
		}
	}
	// Counting 100,000 entries takes DynamoDB Local about ten seconds: they
	// are counted once, after the last run's samples (logs.entries_after).
	b.logf("logs: %d users with one recorded event each, and %d more log entries for one user, in %s", len(l.users), b.cfg.logEntries, time.Since(start).Round(time.Millisecond))
	return l, nil
}

// countHeavy counts the items of the heavy user's log partition (the
// partition key its entries were written with), straight from the table.
func (l *benchLogs) countHeavy(ctx context.Context) (int, error) {
	q := &dynamodb.QueryInput{
		TableName:                 aws.String(l.b.stack.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: l.heavyPK}},
		Select:                    types.SelectCount,
	}
	total := 0
	for page := 0; page < 10_000; page++ {
		out, err := l.b.stack.raw.Query(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("count log entries: %w", err)
		}
		total += int(out.Count)
		if out.LastEvaluatedKey == nil {
			return total, nil
		}
		q.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return 0, fmt.Errorf("count log entries: too many pages")
}

// setLogGen puts u's log generation back to gen (and bumps its version, as
// any change does), so that the entries written in gen are u's current log
// again before the next measured remove or transfer.
func (l *benchLogs) setLogGen(ctx context.Context, u *licadmin.User, gen int64) error {
	_, err := l.b.stack.raw.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.b.stack.table),
		Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#" + u.ID}, "sk": &types.AttributeValueMemberS{Value: "USER"}},
		UpdateExpression:          aws.String("SET #g = :g ADD #v :one"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#g": "logGen", "#v": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberN{Value: fmt.Sprint(gen)}, ":one": &types.AttributeValueMemberN{Value: "1"}},
	})
	if err != nil {
		return fmt.Errorf("reset log generation of %s: %w", u.ID, err)
	}
	return nil
}

// figures measures remove and transfer on the heavy user (its entries in
// its current generation before every sample) and on the light one, in
// alternation, and compares their p50.
func (l *benchLogs) figures(ctx context.Context) error {
	b := l.b
	entries := fmt.Sprintf("%d", b.cfg.logEntries)
	for _, op := range []string{"remove", "transfer"} {
		b.figs.define(figureDef{ID: "logs." + op + ".none.p50", Title: op + " p50, user without log entries", Unit: "ms",
			Meaning: fmt.Sprintf("%s through the API of a user with no log entries, sequentially, alternating with the next figure's samples: p50", op)})
		b.figs.define(figureDef{ID: "logs." + op + ".many.p50", Title: op + " p50, user with " + entries + " log entries", Unit: "ms",
			Meaning: fmt.Sprintf("%s through the API of a user whose current log generation holds %s entries (written with BatchWriteItem in the shape RecordUsage writes; the harness sets the user's logGen back to that generation before each sample): p50", op, entries),
			Floor:   "logs." + op + ".none.p50", Target: "ratio <= 1.1", Check: ratioAtMost(1.1)})
	}
	b.figs.define(figureDef{ID: "logs.remove.many.items", Title: "items read per remove of a user with many entries", Unit: "items/op",
		Meaning: "DynamoDB items read (counted by SDK middleware from the responses) per remove of that user: independent of its log"})
	b.figs.define(figureDef{ID: "logs.entries_after", Title: "the user's entries after the samples", Unit: "count",
		Meaning: "log entries in the heavy user's generation after the last run's samples, counted with a Query (remove and transfer leave them to the background purge, which the benchmark's stack does not run): its one recorded event and every entry written",
		Target:  fmt.Sprintf("= %d", b.cfg.logEntries+1), Check: exactly(float64(b.cfg.logEntries + 1))})

	lic := func(u *licadmin.User, method string) error {
		_, err := b.stack.expect(ctx, 200, method, "/v1/users/"+u.ID+"/license", l.acct.token, licenseBody(method, licadmin.Eco))
		return err
	}
	transfer := func(from, to *licadmin.User) error {
		_, err := b.stack.expect(ctx, 200, "POST", "/v1/users/"+from.ID+"/license/transfer", l.acct.token, map[string]string{"toUserId": to.ID})
		return err
	}
	timed := func(fn func() error) (time.Duration, error) {
		t0 := time.Now()
		err := fn()
		return time.Since(t0), err
	}
	lat := map[string][]time.Duration{}
	var heavyItems, heavyRemoves int
	deadline := time.Now().Add(b.cfg.phaseLimit)
	for k := 0; k < b.cfg.logSamples && time.Now().Before(deadline); k++ {
		for _, s := range []struct {
			name    string
			u, to   *licadmin.User
			resetTo int64
		}{
			{"many", l.heavy, l.heavyTo, l.heavyGen},
			{"none", l.light, l.lightTo, -1},
		} {
			// remove: u holds a license, in its generation; time the remove.
			if err := lic(s.u, "POST"); err != nil {
				return err
			}
			if s.resetTo >= 0 {
				if err := l.setLogGen(ctx, s.u, s.resetTo); err != nil {
					return err
				}
			}
			b.stack.counter.reset()
			d, err := timed(func() error { return lic(s.u, "DELETE") })
			if err != nil {
				return err
			}
			if s.name == "many" {
				heavyItems += b.stack.counter.reset().items
				heavyRemoves++
			}
			lat["remove."+s.name] = append(lat["remove."+s.name], d)

			// transfer: u holds a license again, in its generation; time
			// the transfer to its partner, then give the license back.
			if err := lic(s.u, "POST"); err != nil {
				return err
			}
			if s.resetTo >= 0 {
				if err := l.setLogGen(ctx, s.u, s.resetTo); err != nil {
					return err
				}
			}
			d, err = timed(func() error { return transfer(s.u, s.to) })
			if err != nil {
				return err
			}
			lat["transfer."+s.name] = append(lat["transfer."+s.name], d)
			if err := transfer(s.to, s.u); err != nil {
				return err
			}
			if err := lic(s.u, "DELETE"); err != nil {
				return err
			}
		}
	}
	for key, ds := range lat {
		b.figs.record(b.run, "logs."+key+".p50", percentile(ds, 50))
	}
	b.figs.record(b.run, "logs.remove.many.items", float64(heavyItems)/float64(max(heavyRemoves, 1)))
	remain := ""
	if b.run == b.cfg.runs-1 {
		count, err := l.countHeavy(ctx)
		if err != nil {
			return err
		}
		b.figs.record(b.run, "logs.entries_after", float64(count))
		remain = fmt.Sprintf("; %d entries remain", count)
	}
	b.logf("logs: remove p50 %.2f ms with %s entries vs %.2f ms without; transfer p50 %.2f vs %.2f ms (%d samples each)%s",
		percentile(lat["remove.many"], 50), entries, percentile(lat["remove.none"], 50),
		percentile(lat["transfer.many"], 50), percentile(lat["transfer.none"], 50), len(lat["remove.many"]), remain)
	return nil
}

// statsItems returns the DynamoDB items that GET /v1/stats of the account
// reads for this month, every page of 200 users.
func (l *benchLogs) statsItems(ctx context.Context) (float64, error) {
	month := time.Now().UTC().Format("2006-01")
	path := "/v1/stats?limit=200&from=" + month + "&to=" + month
	l.b.stack.counter.reset()
	pages := 0
	for cursor := ""; pages < 1000; pages++ {
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		r, err := l.b.stack.expect(ctx, 200, "GET", p, l.acct.token, nil)
		if err != nil {
			return 0, err
		}
		next, err := nextCursor(r.body)
		if err != nil {
			return 0, err
		}
		if next == "" {
			break
		}
		cursor = next
	}
	counts := l.b.stack.counter.reset()
	_, rcu, err := l.b.stack.sizes.units(ctx, l.b.stack.raw, l.b.stack.table, counts.units)
	if err != nil {
		return 0, err
	}
	l.statsRCU = rcu / float64(len(l.users))
	return float64(counts.items), nil
}

// statsFigures reads the statistics of the logs account, whose heavy user
// has cfg.logEntries entries, and compares the items read with those read
// before the entries were written.
func (l *benchLogs) statsFigures(ctx context.Context) error {
	b := l.b
	b.figs.define(figureDef{ID: "stats.items.base", Title: "items read by GET /v1/stats, few log entries", Unit: "items",
		Meaning: fmt.Sprintf("GET /v1/stats (this month, all pages) of an account of %d users with one usage event each: DynamoDB items read, counted by SDK middleware (measured once, before the next figure's entries were written)", len(l.users))})
	b.figs.define(figureDef{ID: "stats.items.many", Title: "items read by GET /v1/stats, many log entries", Unit: "items",
		Meaning: fmt.Sprintf("the same request once one of the users has %d more log entries", b.cfg.logEntries),
		Floor:   "stats.items.base", Target: "ratio = 1 (independent of log count)", Check: ratioAtMost(1)})
	items, err := l.statsItems(ctx)
	if err != nil {
		return err
	}
	b.figs.define(figureDef{ID: "stats.rcu", Title: "GET /v1/stats read units per user", Unit: "RCU/user",
		Meaning: "read capacity units of GET /v1/stats (this month, all pages of 200) per user listed, with the many log entries, computed from the requests by DynamoDB's rules (bench_capacity.go)"})
	b.figs.record(b.run, "stats.items.base", l.statsBase)
	b.figs.record(b.run, "stats.rcu", l.statsRCU)
	b.figs.record(b.run, "stats.items.many", items)
	b.logf("stats: GET /v1/stats read %.0f items with %d more log entries, %.0f before", items, b.cfg.logEntries, l.statsBase)
	return nil
}

// nextCursor reads the nextCursor of a paginated answer ("" for none).
func nextCursor(body []byte) (string, error) {
	var p struct {
		NextCursor *string `json:"nextCursor"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "", fmt.Errorf("decode page: %w", err)
	}
	if p.NextCursor == nil {
		return "", nil
	}
	return *p.NextCursor, nil
}

// logEntries returns the log entries that usage event claims carry, as
// the recording function puts them.
func logEntries(claims []map[string]types.AttributeValue) []map[string]types.AttributeValue {
	var out []map[string]types.AttributeValue
	for _, c := range claims {
		if e := store.ClaimedEntry(c); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// floorEntries returns log entries as RecordUsage puts them, without the
// mark that has the recording function count their INSERTs: the floor's
// entries are written to the ingestion's table, and must not count.
func floorEntries(entries []map[string]types.AttributeValue) []map[string]types.AttributeValue {
	out := make([]map[string]types.AttributeValue, len(entries))
	for i, e := range entries {
		out[i] = maps.Clone(e)
		delete(out[i], "counts")
	}
	return out
}
