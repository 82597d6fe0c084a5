package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/oklog/ulid/v2"

	"licenseadmin"
	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/s3local"
	"licenseadmin/infra/stack"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
	"licenseadmin/shared/store"
	"licenseadmin/shared/user"
)

// benchStack is the local system as `run` builds it, on free loopback
// ports: DynamoDB Local, the table, the functions' App with a request
// counter on its DynamoDB client, and the HTTP API served in-process, plus
// a second DynamoDB client, configured like the App's, for the floors.
type benchStack struct {
	ddb     *dynamolocal.Server
	table   string
	app     *app.App
	counter *requestCounter
	// raw is the client of the floors: same configuration as the App's,
	// its own connections.
	raw *dynamodb.Client
	// sizes sizes the items of the writes whose capacity units depend on
	// them, and their index entries (bench_capacity.go).
	sizes   itemSizes
	baseURL string
	client  *http.Client
	key     *stack.SigningKey
	httpSrv *http.Server
	served  chan error
	// s3 is the files bucket's store; uploads receives the S3 events of
	// CSV files uploaded under imports/.
	s3      *s3local.Server
	uploads chan []byte
	seq     atomic.Int64
}

// benchTable is the table the benchmark creates on its own DynamoDB Local,
// and benchBucket the bucket of its local S3.
const (
	benchTable  = "license-admin-bench"
	benchBucket = "license-admin-bench-files"
)

// startBenchStack starts the stack; stop ends it.
func startBenchStack(ctx context.Context, root string, stdout io.Writer) (*benchStack, error) {
	key, err := stack.LoadOrCreateKey(root)
	if err != nil {
		return nil, err
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return nil, err
	}
	s := &benchStack{table: benchTable, key: key, counter: newRequestCounter()}
	tableIn, err := tpl.TableInput(s.table)
	if err != nil {
		return nil, err
	}
	s.sizes.indexes = tableIndexes(tableIn)
	// A DynamoDB Local of its own, on a free port: never `make run`'s.
	if s.ddb, err = dynamolocal.Start(ctx, dynamolocal.Options{Dir: root}); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	if err := checkLoopbackURL(s.ddb.Endpoint); err != nil {
		return nil, err
	}
	// The files bucket, on a local S3 of its own; the events of uploads
	// under imports/ come to s.uploads, and the benchmark hands them to
	// the import function's process itself.
	if s.s3, err = s3local.Start("127.0.0.1:0", benchBucket); err != nil {
		return nil, err
	}
	s.uploads = make(chan []byte, 16)
	s.s3.Notify(s3local.Notification{Bucket: benchBucket, Prefix: importer.ImportPrefix, Suffix: ".csv",
		Deliver: func(payload []byte) {
			select {
			case s.uploads <- payload:
			default: // nobody waits for it: an upload the benchmark did not make
			}
		}})
	admin, err := dynamolocal.Client(ctx, s.ddb.Endpoint)
	if err != nil {
		return nil, err
	}
	if err := dynamolocal.CreateTable(ctx, admin, s.table); err != nil {
		return nil, err
	}
	if err := quietTable(ctx, admin, s.table, tpl.TTLAttribute()); err != nil {
		return nil, err
	}
	// The functions' configuration as `run` builds it, with this stack's
	// table and DynamoDB, and metrics on as in AWS (their lines are
	// encoded, then discarded below). The user's environment is not read:
	// the benchmark measures this configuration only.
	cfg, err := stack.AppConfig(&cli.Env{Dir: root, Getenv: func(name string) string {
		switch name {
		case "TABLE_NAME":
			return s.table
		case "DYNAMODB_ENDPOINT":
			return s.ddb.Endpoint
		case "S3_ENDPOINT":
			return s.s3.URL
		case "BUCKET_NAME":
			return benchBucket
		case "METRICS":
			return "on"
		case "LOG_LEVEL":
			return "INFO"
		}
		return ""
	}})
	if err != nil {
		return nil, err
	}
	if s.app, err = app.New(ctx, cfg, s.counter.option()); err != nil {
		return nil, err
	}
	rawApp, err := app.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.raw = rawApp.DynamoDB
	// The functions log one JSON line per request, as in AWS; the encoding
	// is part of a request's cost, the terminal does not need the lines.
	s.app.API.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if s.app.Metrics != nil {
		s.app.Metrics.W = io.Discard
	}
	srv, err := stack.NewAPI(tpl, s.app, key, log.New(io.Discard, "", 0))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	s.baseURL = "http://" + ln.Addr().String()
	s.httpSrv = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan error, 1)
	go func() { s.served <- s.httpSrv.Serve(ln) }()
	s.client = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext:         loopbackDialer,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	fmt.Fprintf(stdout, "stack: DynamoDB Local %s, table %s, S3 %s, API %s\n", s.ddb.Endpoint, s.table, s.s3.URL, s.baseURL)
	ok = true
	return s, nil
}

// stop ends the HTTP API and DynamoDB Local.
func (s *benchStack) stop() error {
	var errs []error
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stack.ShutdownTimeout)
		defer cancel()
		if err := s.httpSrv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	if s.s3 != nil {
		if err := s.s3.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.ddb.Stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loopbackDialer dials loopback addresses only: the benchmark never sends
// a request off this machine.
func loopbackDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("bench: refusing to dial %s: only loopback addresses", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// checkLoopbackURL refuses an endpoint that is not a loopback address
// (DYNAMODB_ENDPOINT may name any).
func checkLoopbackURL(u string) error {
	host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("bench: DynamoDB endpoint %s is not a loopback address; unset DYNAMODB_ENDPOINT", u)
	}
	return nil
}

// apiResult is the outcome of one API call.
type apiResult struct {
	status int
	code   string // the problem's code when status >= 400
	body   []byte
}

// call sends one API request with a bearer token and reads the whole
// answer (so that the connection is reused).
func (s *benchStack) call(ctx context.Context, method, path, token string, body any) (apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResult{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.baseURL+path, rd)
	if err != nil {
		return apiResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return apiResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResult{}, err
	}
	r := apiResult{status: resp.StatusCode, body: b}
	if r.status >= 400 {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &p)
		r.code = p.Code
	}
	return r, nil
}

// expect calls the API and fails unless it answers want.
func (s *benchStack) expect(ctx context.Context, want int, method, path, token string, body any) (apiResult, error) {
	r, err := s.call(ctx, method, path, token, body)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if r.status != want {
		return r, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, r.status, want, bytes.TrimSpace(r.body))
	}
	return r, nil
}

// benchAccount is an account made for one measurement: its admin (as the
// store knows it) and the admin's bearer token.
type benchAccount struct {
	id     string
	admin  *licadmin.Caller
	token  string
	domain string
}

// newAccount creates an account through the operator service (the path
// operators use) and adds licenses to its pool.
func (s *benchStack) newAccount(ctx context.Context, name string, licenses map[licadmin.Tier]int64) (*benchAccount, error) {
	n := s.seq.Add(1)
	domain := fmt.Sprintf("%s-%d.bench.example", slug(name), n)
	email := "admin@" + domain
	out, err := s.app.Operator.CreateAccount(ctx, operator.CreateAccountInput{Name: name, AdminEmail: email})
	if err != nil {
		return nil, fmt.Errorf("create account %s: %w", name, err)
	}
	for _, tier := range licadmin.Tiers {
		q := licenses[tier]
		if q == 0 {
			continue
		}
		_, err := s.app.Operator.AddLicenses(ctx, operator.AddLicensesInput{AccountID: out.AccountID, Tier: string(tier), Quantity: q, OrderID: fmt.Sprintf("bench-%d-%s", n, tier)})
		if err != nil {
			return nil, fmt.Errorf("add %s licenses: %w", tier, err)
		}
	}
	tok, err := stack.IssueToken(s.key, email, true, time.Now())
	if err != nil {
		return nil, err
	}
	return &benchAccount{
		id:     out.AccountID,
		admin:  &licadmin.Caller{Email: email, UserID: out.AdminUserID, AccountID: out.AccountID, Role: licadmin.RoleAdmin},
		token:  tok,
		domain: domain,
	}, nil
}

// captureDB stands in for DynamoDB under a store.Store to capture the
// writes the store would send: each TransactWriteItems is recorded and
// answered as if it succeeded. Any other call is unexpected: the nil
// embedded interface makes it panic, and capture turns that into an error.
type captureDB struct {
	store.DynamoDB
	txs     []*dynamodb.TransactWriteItemsInput
	batches []*dynamodb.BatchWriteItemInput
	queries []*dynamodb.QueryInput
	reads   []*dynamodb.BatchGetItemInput
	gets    []*dynamodb.GetItemInput
	puts    []*dynamodb.PutItemInput
}

// PutItem records the put and answers that it succeeded.
func (c *captureDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.puts = append(c.puts, in)
	return &dynamodb.PutItemOutput{}, nil
}

// GetItem records the read and answers that nothing was found.
func (c *captureDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets = append(c.gets, in)
	return &dynamodb.GetItemOutput{}, nil
}

// BatchGetItem records the read and answers that nothing was found.
func (c *captureDB) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.reads = append(c.reads, in)
	return &dynamodb.BatchGetItemOutput{}, nil
}

// Query records the query and answers that nothing matched.
func (c *captureDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries = append(c.queries, in)
	return &dynamodb.QueryOutput{}, nil
}

func (c *captureDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.txs = append(c.txs, in)
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// BatchWriteItem records the write and answers that every item was written.
func (c *captureDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.batches = append(c.batches, in)
	return &dynamodb.BatchWriteItemOutput{}, nil
}

// batchPuts returns the items that batches put whose partition key starts
// with one of prefixes.
func batchPuts(batches []*dynamodb.BatchWriteItemInput, prefixes ...string) []map[string]types.AttributeValue {
	var out []map[string]types.AttributeValue
	for _, in := range batches {
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				if r.PutRequest == nil {
					continue
				}
				pk, _ := r.PutRequest.Item["pk"].(*types.AttributeValueMemberS)
				for _, p := range prefixes {
					if pk != nil && strings.HasPrefix(pk.Value, p) {
						out = append(out, r.PutRequest.Item)
						break
					}
				}
			}
		}
	}
	return out
}

// capture runs fn on a store over a captureDB and returns the transactions
// it would have sent, exactly as the store builds them.
func (s *benchStack) capture(fn func(st *store.Store) error) (txs []*dynamodb.TransactWriteItemsInput, err error) {
	db, err := s.captureAll(fn)
	if err != nil {
		return nil, err
	}
	return db.txs, nil
}

// captureAll is capture returning every request recorded.
func (s *benchStack) captureAll(fn func(st *store.Store) error) (db *captureDB, err error) {
	db = &captureDB{}
	st := &store.Store{DB: db, Table: s.table, NewID: func() string { return ulid.Make().String() }}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bench: the store made a call the capture does not expect: %v", p)
		}
	}()
	if err := fn(st); err != nil {
		return nil, err
	}
	return db, nil
}

// puts returns the items of a transaction's Puts whose partition key
// starts with one of prefixes.
func puts(txs []*dynamodb.TransactWriteItemsInput, prefixes ...string) []map[string]types.AttributeValue {
	var out []map[string]types.AttributeValue
	for _, tx := range txs {
		for _, it := range tx.TransactItems {
			if it.Put == nil {
				continue
			}
			pk, _ := it.Put.Item["pk"].(*types.AttributeValueMemberS)
			for _, p := range prefixes {
				if pk != nil && strings.HasPrefix(pk.Value, p) {
					out = append(out, it.Put.Item)
					break
				}
			}
		}
	}
	return out
}

// seedStore lets user.Service build users exactly as the API does
// (validation, defaults) while capturing the items instead of writing them.
type seedStore struct {
	user.Store
	caller *licadmin.Caller
	create func(ctx context.Context, c *licadmin.Caller, u *licadmin.User, domain string, now time.Time) (*licadmin.User, error)
}

// seedUsers returns the user service, as the API builds it, whose
// creations by acct's admin go to st's CreateUser (a capturing store's).
func seedUsers(acct *benchAccount, st *store.Store) *user.Service {
	return &user.Service{
		Store:   seedStore{caller: acct.admin, create: st.CreateUser},
		Now:     func() time.Time { return time.Now().UTC() },
		NewID:   func() string { return ulid.Make().String() },
		Webmail: licadmin.NewWebmail(licadmin.DefaultWebmailDomains),
	}
}

func (s seedStore) LoadCaller(context.Context, string, ...string) (*licadmin.Caller, []*licadmin.User, error) {
	return s.caller, nil, nil
}

func (s seedStore) CreateUser(ctx context.Context, c *licadmin.Caller, u *licadmin.User, domain string, now time.Time) (*licadmin.User, error) {
	return s.create(ctx, c, u, domain, now)
}

// userItems builds n new users of acct as POST /v1/users would (same
// validation, defaults and items), without writing them: it returns the
// users and the items that CreateUser puts whose partition key starts with
// one of kinds ("USER#" the user, "EMAIL#" its email claim, "ACCT#" its
// audit record).
func (s *benchStack) userItems(ctx context.Context, acct *benchAccount, prefix string, n int, kinds ...string) ([]*licadmin.User, []map[string]types.AttributeValue, error) {
	users, items, _, err := s.userTxs(ctx, acct, prefix, n, kinds...)
	return users, items, err
}

// userTxs is userItems with the CreateUser transactions themselves.
func (s *benchStack) userTxs(ctx context.Context, acct *benchAccount, prefix string, n int, kinds ...string) ([]*licadmin.User, []map[string]types.AttributeValue, []*dynamodb.TransactWriteItemsInput, error) {
	users := make([]*licadmin.User, 0, n)
	txs, err := s.capture(func(st *store.Store) error {
		svc := seedUsers(acct, st)
		ctx := benchRequest(ctx, acct)
		for i := range n {
			u, err := svc.Create(ctx, licadmin.Request{Email: acct.admin.Email}, user.NewUser{
				Email:     fmt.Sprintf("%s-%d@%s", prefix, i, acct.domain),
				FirstName: "Bench",
				LastName:  fmt.Sprintf("User %d", i),
			})
			if err != nil {
				return err
			}
			users = append(users, u)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return users, puts(txs, kinds...), txs, nil
}

// importChunkRows is how many rows of one domain without licenses the
// import puts in a chunk.
var importChunkRows = importer.PlainChunkRows()

// importItems returns the items that an import of n new users of acct
// puts (user items, email claims, and the audit record of each chunk),
// captured from the store's own CommitImportChunk in chunks as full as the
// import makes them: the BatchWriteItem floor of the imports writes them.
func (s *benchStack) importItems(ctx context.Context, acct *benchAccount, prefix string, n int) ([]map[string]types.AttributeValue, error) {
	items, _, err := s.importTxs(ctx, acct, prefix, n)
	return items, err
}

// importTxs is importItems with the CommitImportChunk transactions.
func (s *benchStack) importTxs(ctx context.Context, acct *benchAccount, prefix string, n int) ([]map[string]types.AttributeValue, []*dynamodb.TransactWriteItemsInput, error) {
	users, _, err := s.userItems(ctx, acct, prefix, n)
	if err != nil {
		return nil, nil, err
	}
	imp := &licadmin.Import{ID: ulid.Make().String(), AccountID: acct.id, Actor: acct.admin.Email, Status: licadmin.ImportRunning}
	txs, err := s.capture(func(st *store.Store) error {
		now := time.Now().UTC()
		for start := 0; start < n; start += importChunkRows {
			ch := &licadmin.ImportChunk{Import: imp, RequestID: "bench", Now: now, LeaseUntil: now.Add(time.Minute)}
			for i, u := range users[start:min(n, start+importChunkRows)] {
				ch.Rows = append(ch.Rows, licadmin.ImportRow{Line: int64(start + i + 2), User: u, Domain: acct.domain})
			}
			ch.Read, ch.Line = int64(len(ch.Rows)), ch.Rows[len(ch.Rows)-1].Line
			res, err := st.CommitImportChunk(ctx, ch)
			if err != nil {
				return err
			}
			imp = res.Import
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	items := puts(txs, "USER#", "EMAIL#", "ACCT#")
	if want := 2*n + (n+importChunkRows-1)/importChunkRows; len(items) != want {
		return nil, nil, fmt.Errorf("bench: an import of %d rows put %d user, claim and audit items, want %d (two per row, one per chunk): update the benchmark to the import's shape", n, len(items), want)
	}
	return items, txs, nil
}

// seedUsers writes n new users of acct (see userItems) with BatchWriteItem.
func (s *benchStack) seedUsers(ctx context.Context, acct *benchAccount, prefix string, n int) ([]*licadmin.User, error) {
	users, items, err := s.userItems(ctx, acct, prefix, n, "USER#", "EMAIL#")
	if err != nil {
		return nil, err
	}
	if err := batchWrite(ctx, s.raw, s.table, items, 4); err != nil {
		return nil, err
	}
	return users, nil
}

// batchWriteSize is BatchWriteItem's limit on items per call.
const batchWriteSize = 25

// batchWrite puts items with BatchWriteItem, 25 per call and workers calls
// at once, sending unprocessed items again (at most 20 times per call).
func batchWrite(ctx context.Context, db *dynamodb.Client, table string, items []map[string]types.AttributeValue, workers int) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	chunks := (len(items) + batchWriteSize - 1) / batchWriteSize
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1)) - 1
				if c >= chunks || ctx.Err() != nil {
					return
				}
				chunk := items[c*batchWriteSize : min((c+1)*batchWriteSize, len(items))]
				if err := batchWriteChunk(ctx, db, table, chunk); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func batchWriteChunk(ctx context.Context, db *dynamodb.Client, table string, chunk []map[string]types.AttributeValue) error {
	reqs := make([]types.WriteRequest, len(chunk))
	for i, it := range chunk {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
	}
	pending := map[string][]types.WriteRequest{table: reqs}
	for attempt := 0; len(pending[table]) > 0; attempt++ {
		if attempt == 20 {
			return errors.New("batch write: items still unprocessed after 20 attempts")
		}
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
		}
		out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return fmt.Errorf("batch write: %w", err)
		}
		pending = out.UnprocessedItems
	}
	return nil
}

// requestCounter counts the DynamoDB requests a client sends (each attempt,
// retries included) by operation, and the items they read.
type requestCounter struct {
	mu    sync.Mutex
	calls map[string]int
	items int
	took  map[string][]time.Duration
	units capacity
}

func newRequestCounter() *requestCounter {
	return &requestCounter{calls: map[string]int{}, took: map[string][]time.Duration{}}
}

// option adds the counting middleware to a DynamoDB client: requests are
// counted in the finalize step, after the retryer, so that every attempt
// counts; items are counted from the decoded result.
func (c *requestCounter) option() func(*dynamodb.Options) {
	count := middleware.FinalizeMiddlewareFunc("benchCountRequests", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		op := middleware.GetOperationName(ctx)
		start := time.Now()
		out, md, err := next.HandleFinalize(ctx, in)
		took := time.Since(start)
		c.mu.Lock()
		c.calls[op]++
		c.took[op] = append(c.took[op], took)
		c.mu.Unlock()
		return out, md, err
	})
	items := middleware.InitializeMiddlewareFunc("benchCountItems", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleInitialize(ctx, in)
		if err == nil {
			n := itemsRead(out.Result)
			units := requestCapacity(in.Parameters, out.Result)
			c.mu.Lock()
			c.items += n
			c.units = c.units.add(units)
			c.mu.Unlock()
		}
		return out, md, err
	})
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			if err := s.Initialize.Add(items, middleware.Before); err != nil {
				return err
			}
			return s.Finalize.Add(count, middleware.After)
		})
	}
}

// itemsRead is how many items a read returned or, for Query and Scan, read
// (ScannedCount: a filter drops items after they are read).
func itemsRead(result any) int {
	switch out := result.(type) {
	case *dynamodb.GetItemOutput:
		if out.Item != nil {
			return 1
		}
	case *dynamodb.BatchGetItemOutput:
		n := 0
		for _, items := range out.Responses {
			n += len(items)
		}
		return n
	case *dynamodb.QueryOutput:
		return int(out.ScannedCount)
	case *dynamodb.ScanOutput:
		return int(out.ScannedCount)
	case *dynamodb.TransactGetItemsOutput:
		n := 0
		for _, r := range out.Responses {
			if r.Item != nil {
				n++
			}
		}
		return n
	}
	return 0
}

// requestCounts is a snapshot of a requestCounter.
type requestCounts struct {
	calls map[string]int
	items int
	took  map[string][]time.Duration
	units capacity
}

// add returns the sum of r and o.
func (r requestCounts) add(o requestCounts) requestCounts {
	sum := requestCounts{calls: map[string]int{}, items: r.items + o.items, took: map[string][]time.Duration{}, units: r.units.add(o.units)}
	for _, x := range []requestCounts{r, o} {
		for k, v := range x.calls {
			sum.calls[k] += v
		}
		for k, v := range x.took {
			sum.took[k] = append(sum.took[k], v...)
		}
	}
	return sum
}

// writeOps and readOps name the DynamoDB operations that write and read.
var (
	writeOps = []string{"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
	readOps  = []string{"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
)

func (r requestCounts) sum(ops []string) int {
	n := 0
	for _, op := range ops {
		n += r.calls[op]
	}
	return n
}

// describe lists the non-zero counts with the median time of each kind of
// request as the functions' client saw it (signing, HTTP, parsing), such
// as "BatchGetItem=300 (p50 0.81 ms) TransactWriteItems=300 (p50 4.90 ms)".
func (r requestCounts) describe() string {
	var parts []string
	add := func(op string) {
		if n := r.calls[op]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d (p50 %.2f ms)", op, n, percentile(r.took[op], 50)))
		}
	}
	for _, op := range append(append([]string{}, readOps...), writeOps...) {
		add(op)
	}
	for op := range r.calls {
		if !containsString(readOps, op) && !containsString(writeOps, op) {
			add(op)
		}
	}
	return strings.Join(parts, " ")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// reset forgets the counts and returns what they were.
func (c *requestCounter) reset() requestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := requestCounts{calls: c.calls, items: c.items, took: c.took, units: c.units}
	c.calls, c.items, c.took, c.units = map[string]int{}, 0, map[string][]time.Duration{}, capacity{}
	return r
}

// quietTable turns off what DynamoDB Local does in the background for a
// table the benchmark measures: its stream, which nothing reads there (the
// benchmark runs no stream function on it; the ingestion's figures use a
// table of their own), and its TTL, which nothing measured waits for.
// DynamoDB Local runs both on the one SQLite thread that serves every
// request (a thread dump of a slowed run showed it looking streams up for
// every write; the TTL job is turned off as a precaution, not a measured
// cause). In AWS both happen outside the request path. ttlAttr is the
// template's TTL attribute ("" when it has none).
func quietTable(ctx context.Context, db *dynamodb.Client, table, ttlAttr string) error {
	if _, err := db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: &table,
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(false)}}); err != nil {
		return fmt.Errorf("turn off the stream of %s: %w", table, err)
	}
	if ttlAttr == "" {
		return nil
	}
	if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: &table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: &ttlAttr, Enabled: aws.Bool(false)}}); err != nil {
		return fmt.Errorf("turn off the TTL of %s: %w", table, err)
	}
	return nil
}
