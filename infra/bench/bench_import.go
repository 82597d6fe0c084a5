package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"licenseadmin/infra/stack"
	"licenseadmin/infra/tail"
	"licenseadmin/shared/licadmin"
)

// The import figures run the import function's own binary (built for this
// machine with the Lambda flags) in a process of its own, as Lambda runs
// it: the benchmark serves the Lambda runtime API on loopback, hands the
// process the S3 event of the uploaded CSV file, and reads the process's
// peak resident memory (VmHWM in /proc/<pid>/status) when the import is
// done. The function talks to the benchmark's DynamoDB Local and local S3;
// its asynchronous self-invocations (continuations of a long import) come
// back to the same runtime API as the next invocation, as Lambda would
// deliver them.

// importFunctionDir is the import function's directory under functions/,
// and importFunctionName its logical id in template.yaml.
const (
	importFunctionDir  = "import-users"
	importFunctionName = "ImportUsersFunction"
	// importTimeout is the function's Timeout in template.yaml: each
	// invocation's deadline.
	importTimeout = 900 * time.Second
)

// importFigures measures the import of cfg.importRows rows without and
// with licenses (throughput, against the BatchWriteItem floor of the same
// run, and peak memory), and the peak memory of imports of each size in
// cfg.rssRows.
func (b *bench) importFigures(ctx context.Context, builds *benchBuilds) error {
	rows := b.cfg.importRows
	b.figs.define(figureDef{ID: "floor.import.rows", Title: "BatchWriteItem stream of user rows, next to the imports", Unit: "rows/s",
		Meaning: "floor of the imports: as floor.batch.rows, measured right before each import (a twentieth of its rows, at most 5,000) so that both see the same machine; the mean of the two"})
	b.figs.define(figureDef{ID: "import.plain.rows", Title: "import of users without licenses", Unit: "rows/s",
		Meaning: fmt.Sprintf("CSV import of %d new users without licenses (uploaded to the local S3 with the presigned URL of POST /v1/imports), from the S3 event to the import's end (report written), by the import function's own binary in a process of its own: rows per second; once per invocation", rows),
		Floor:   "floor.import.rows", Target: "ratio >= 0.5", Check: ratioAtLeast(0.5)})
	b.figs.define(figureDef{ID: "import.licensed.rows", Title: "import of users with licenses", Unit: "rows/s",
		Meaning: "the same with an eco license on every row (the pool has enough): rows per second",
		Floor:   "floor.import.rows", Target: "ratio >= 0.3", Check: ratioAtLeast(0.3)})
	for i, n := range b.cfg.rssRows {
		id := "import.rss." + rowsLabel(n)
		d := figureDef{ID: id, Title: fmt.Sprintf("import process peak RSS, %d rows", n), Unit: "MB", Family: "import.rss.<rows>",
			Meaning: "peak resident memory (VmHWM, MB of 2^20 bytes) of the import function's process over a whole import of that many rows without licenses; compared with the next smaller size",
			Target:  "<= 128", Check: atMost(128)}
		if i > 0 {
			d.Floor = "import.rss." + rowsLabel(b.cfg.rssRows[i-1])
			d.Target = "<= 128 and ratio <= 1.1"
			d.Check = func(v, r float64) bool { return v <= 128 && r <= 1.1 }
		}
		b.figs.define(d)
	}
	rt, err := startFakeRuntime()
	if err != nil {
		return err
	}
	defer rt.close()
	plain, err := b.importOnce(ctx, builds, rt, rows, false)
	if err != nil {
		return err
	}
	licensed, err := b.importOnce(ctx, builds, rt, rows, true)
	if err != nil {
		return err
	}
	// One import of each kind per invocation: they take minutes.
	b.figs.record(0, "floor.import.rows", (plain.floor+licensed.floor)/2)
	b.figs.record(0, "import.plain.rows", plain.rowsPerSecond())
	b.figs.record(0, "import.licensed.rows", licensed.rowsPerSecond())
	if f, ok := b.figs.byID["import.row.wcu"]; ok && !math.IsNaN(spreadOf(f.values).Median) {
		wcu := spreadOf(f.values).Median
		mb, err := functionMemoryMB("ImportUsersFunction")
		if err != nil {
			return err
		}
		const rows100k = 100_000
		seconds := rows100k / plain.rowsPerSecond()
		cost := rows100k*wcu*awsPrices.WriteUnit + seconds*float64(mb)/1024*awsPrices.GBSecond
		b.figs.record(0, "cost.import.100k", cost)
		b.logf("import: $%.3f per 100,000 rows (%.2f WCU per row, %.0f s of the import function at %d MB)", cost, wcu, seconds, mb)
	} else {
		b.figs.note("cost.import.100k", "not measured: import.row.wcu comes from the data step (--only data,import)")
	}
	rss := map[int]float64{rows: plain.peakMB}
	for _, n := range b.cfg.rssRows {
		if _, ok := rss[n]; !ok {
			res, err := b.importOnce(ctx, builds, rt, n, false)
			if err != nil {
				return err
			}
			rss[n] = res.peakMB
		}
		b.figs.record(0, "import.rss."+rowsLabel(n), rss[n])
	}
	return nil
}

func rowsLabel(n int) string {
	switch {
	case n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "m"
	case n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// importResult is one measured import.
type importResult struct {
	rows    int
	elapsed time.Duration
	peakMB  float64
	// floor is the BatchWriteItem floor measured right before, rows/s.
	floor float64
}

func (r importResult) rowsPerSecond() float64 { return float64(r.rows) / r.elapsed.Seconds() }

// importOnce imports n new users (each with an eco license when licensed)
// into a new account through the API and the import function's process,
// and checks that every row was created.
func (b *bench) importOnce(ctx context.Context, builds *benchBuilds, rt *fakeRuntime, n int, licensed bool) (importResult, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.importLimit)
	defer cancel()
	licenses := map[licadmin.Tier]int64{}
	if licensed {
		licenses[licadmin.Eco] = int64(n)
	}
	acct, err := b.stack.newAccount(ctx, "import", licenses)
	if err != nil {
		return importResult{}, err
	}
	floorRows := min(max(n/20, 500), 5_000)
	items, err := b.stack.importItems(ctx, acct, "import-floor", floorRows)
	if err != nil {
		return importResult{}, err
	}
	t0 := time.Now()
	if err := batchWrite(ctx, b.stack.raw, b.stack.table, items, 1); err != nil {
		return importResult{}, err
	}
	floor := float64(floorRows) / time.Since(t0).Seconds()

	// The process starts first and waits for its first event, as a warm
	// Lambda does: its start-up is not part of the import.
	proc, err := builds.startFunction(ctx, importFunctionDir, rt, b.stack)
	if err != nil {
		return importResult{}, err
	}
	defer proc.kill()
	if err := rt.waitReady(ctx, proc); err != nil {
		return importResult{}, err
	}

	r, err := b.stack.expect(ctx, 201, "POST", "/v1/imports", acct.token, map[string]bool{"dryRun": false})
	if err != nil {
		return importResult{}, err
	}
	var up struct {
		ImportID  string            `json:"importId"`
		UploadURL string            `json:"uploadUrl"`
		Headers   map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(r.body, &up); err != nil {
		return importResult{}, fmt.Errorf("decode upload: %w", err)
	}
	csv := importCSV(acct.domain, n, licensed)
	if err := b.upload(ctx, up.UploadURL, up.Headers, csv); err != nil {
		return importResult{}, err
	}
	var event []byte
	select {
	case event = <-b.stack.uploads:
	case <-ctx.Done():
		return importResult{}, fmt.Errorf("no S3 event for the upload: %w", ctx.Err())
	}
	start := time.Now()
	rt.deliver(event)
	status, err := b.waitImport(ctx, rt, proc, acct, up.ImportID)
	elapsed := time.Since(start)
	if err != nil {
		return importResult{}, err
	}
	peak, err := proc.peakMB()
	if err != nil {
		return importResult{}, err
	}
	if status.Status != "done" || status.Created != int64(n) || status.Rows != int64(n) {
		return importResult{}, fmt.Errorf("import of %d rows ended %s with %d rows read, %d created, %d failed", n, status.Status, status.Rows, status.Created, status.Failed)
	}
	kind := "without licenses"
	if licensed {
		kind = "with licenses"
	}
	b.logf("import: %d rows %s (%.1f MB of CSV) in %s: %.0f rows/s (BatchWriteItem floor just before: %.0f rows/s), %d invocation(s), peak RSS %.1f MB",
		n, kind, float64(len(csv))/1e6, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), floor, rt.invocations(), peak)
	return importResult{rows: n, elapsed: elapsed, peakMB: peak, floor: floor}, nil
}

// importCSV is a file of n new users of domain in the template's columns.
func importCSV(domain string, n int, licensed bool) []byte {
	license := ""
	if licensed {
		license = "eco"
	}
	var buf bytes.Buffer
	buf.Grow(n * (40 + len(domain)))
	buf.WriteString("email,first_name,last_name,language,license\n")
	for i := range n {
		fmt.Fprintf(&buf, "user%d@%s,First%d,Last%d,en,%s\n", i, domain, i, i, license)
	}
	return buf.Bytes()
}

// upload PUTs body to a presigned URL with the headers it was signed with.
func (b *bench) upload(ctx context.Context, url string, headers map[string]string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "PUT", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.stack.client.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload: status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// importStatus is GET /v1/imports/{id}.
type importStatus struct {
	Status  string `json:"status"`
	Rows    int64  `json:"rows"`
	Created int64  `json:"created"`
	Failed  int64  `json:"failed"`
}

// waitImport waits until the function has no invocation left to run and
// the import has ended, and returns its status.
func (b *bench) waitImport(ctx context.Context, rt *fakeRuntime, proc *functionProcess, acct *benchAccount, importID string) (importStatus, error) {
	for {
		select {
		case err := <-rt.failures:
			return importStatus{}, fmt.Errorf("the import function failed: %v\n%s", err, proc.output())
		case <-proc.exited:
			return importStatus{}, fmt.Errorf("the import function's process exited: %s", proc.output())
		case <-rt.idleSignal():
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			return importStatus{}, fmt.Errorf("import %s: %w", importID, ctx.Err())
		}
		r, err := b.stack.expect(ctx, 200, "GET", "/v1/imports/"+importID, acct.token, nil)
		if err != nil {
			return importStatus{}, err
		}
		var st importStatus
		if err := json.Unmarshal(r.body, &st); err != nil {
			return importStatus{}, fmt.Errorf("decode import: %w", err)
		}
		if (st.Status == "done" || st.Status == "failed") && rt.idle() {
			return st, nil
		}
	}
}

// functionProcess is a function's binary running under the fake runtime.
type functionProcess struct {
	cmd    *exec.Cmd
	out    *tail.Buffer
	exited chan struct{}
}

// startFunction starts the host build of the function in dir with the
// environment Lambda gives it, pointed at the stack and at rt.
func (bb *benchBuilds) startFunction(ctx context.Context, dir string, rt *fakeRuntime, stack *benchStack) (*functionProcess, error) {
	env := append([]string{}, bb.env...)
	env = append(env,
		"AWS_LAMBDA_RUNTIME_API="+rt.addr,
		"AWS_LAMBDA_FUNCTION_NAME="+importFunctionName,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512",
		// Any AWS service the function calls without an endpoint of the
		// stack (the Lambda API of its self-invocation) is this loopback
		// server: nothing leaves the machine.
		"AWS_ENDPOINT_URL=http://"+rt.addr,
		"TABLE_NAME="+stack.table,
		"DYNAMODB_ENDPOINT="+stack.ddb.Endpoint,
		"S3_ENDPOINT="+stack.s3.URL,
		"BUCKET_NAME="+benchBucket,
		"LOG_LEVEL=WARN",
	)
	out := tail.New(8 << 10)
	cmd := exec.Command(filepath.Join(bb.dir, "host", dir))
	cmd.Env = env
	cmd.Dir = bb.dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", dir, err)
	}
	p := &functionProcess{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// peakMB reads the process's peak resident set size (VmHWM).
func (p *functionProcess) peakMB() (float64, error) {
	v := procField(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid), "VmHWM")
	fields := strings.Fields(v)
	if len(fields) != 2 || fields[1] != "kB" {
		return 0, fmt.Errorf("read VmHWM of process %d: %q (Linux /proc needed)", p.cmd.Process.Pid, v)
	}
	kb, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, err
	}
	return kb / 1024, nil
}

// kill ends the process (this benchmark's child, by its pid) and waits.
func (p *functionProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

func (p *functionProcess) output() string { return strings.TrimSpace(p.out.String()) }

// fakeRuntime serves the Lambda runtime API (2018-06-01) to one function
// process at a time on loopback, and the Lambda Invoke API for the
// function's asynchronous self-invocations, which become its next events.
type fakeRuntime struct {
	addr     string
	srv      *http.Server
	events   chan []byte
	failures chan error

	mu       sync.Mutex
	queued   int
	running  int
	count    int
	ready    chan struct{}
	idleCh   chan struct{}
	seq      int
	deadline time.Duration
}

func startFakeRuntime() (*fakeRuntime, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rt := &fakeRuntime{addr: ln.Addr().String(), events: make(chan []byte, 64), failures: make(chan error, 8),
		ready: make(chan struct{}, 1), idleCh: make(chan struct{}, 1), deadline: importTimeout}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", rt.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", rt.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", rt.invocationError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", rt.initError)
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", rt.invoke)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		rt.fail(fmt.Errorf("the function called an AWS API the benchmark does not serve: %s %s", r.Method, r.URL.Path))
		http.Error(w, `{"message":"not served by the benchmark"}`, http.StatusNotImplemented)
	})
	rt.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rt.srv.Serve(ln) }()
	return rt, nil
}

func (rt *fakeRuntime) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = rt.srv.Shutdown(ctx)
}

func (rt *fakeRuntime) fail(err error) {
	select {
	case rt.failures <- err:
	default:
	}
}

// waitReady waits until proc asks for its first event.
func (rt *fakeRuntime) waitReady(ctx context.Context, proc *functionProcess) error {
	select {
	case <-rt.ready:
		return nil
	case <-proc.exited:
		return fmt.Errorf("the function exited before asking for an event: %s", proc.output())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliver queues an event for the process.
func (rt *fakeRuntime) deliver(event []byte) {
	rt.mu.Lock()
	rt.queued++
	rt.count = 0
	rt.mu.Unlock()
	rt.events <- event
}

// idle reports whether no event is queued or running.
func (rt *fakeRuntime) idle() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.queued == 0 && rt.running == 0
}

// idleSignal fires when an invocation ends (whether or not more follow).
func (rt *fakeRuntime) idleSignal() <-chan struct{} { return rt.idleCh }

// invocations is how many invocations ran since the last deliver.
func (rt *fakeRuntime) invocations() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.count
}

func (rt *fakeRuntime) next(w http.ResponseWriter, r *http.Request) {
	select {
	case rt.ready <- struct{}{}:
	default:
	}
	var ev []byte
	select {
	case ev = <-rt.events:
	case <-r.Context().Done():
		return
	}
	rt.mu.Lock()
	rt.queued--
	rt.running++
	rt.count++
	rt.seq++
	id := fmt.Sprintf("bench-%d", rt.seq)
	rt.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(rt.deadline).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:"+stack.LocalRegion+":"+stack.LocalAccountID+":function:"+importFunctionName)
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(ev)
}

func (rt *fakeRuntime) ended() {
	rt.mu.Lock()
	rt.running--
	rt.mu.Unlock()
	select {
	case rt.idleCh <- struct{}{}:
	default:
	}
}

func (rt *fakeRuntime) response(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	rt.ended()
	w.WriteHeader(http.StatusAccepted)
}

func (rt *fakeRuntime) invocationError(w http.ResponseWriter, r *http.Request) {
	msg, _ := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	rt.fail(fmt.Errorf("invocation %s failed: %s", r.PathValue("id"), msg))
	rt.ended()
	w.WriteHeader(http.StatusAccepted)
}

func (rt *fakeRuntime) initError(w http.ResponseWriter, r *http.Request) {
	msg, _ := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	rt.fail(fmt.Errorf("init failed: %s", msg))
	w.WriteHeader(http.StatusAccepted)
}

// invoke is Lambda's Invoke: an asynchronous invocation of the function
// itself is queued as its next event; anything else is refused.
func (rt *fakeRuntime) invoke(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil || r.PathValue("name") != importFunctionName || r.Header.Get("X-Amz-Invocation-Type") != "Event" {
		rt.fail(errors.New("the function invoked something else than itself asynchronously: " + r.URL.Path))
		http.Error(w, `{"message":"not served by the benchmark"}`, http.StatusBadRequest)
		return
	}
	rt.mu.Lock()
	rt.queued++
	rt.mu.Unlock()
	rt.events <- payload
	w.WriteHeader(http.StatusAccepted)
}
