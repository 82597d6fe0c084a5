package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/shared/licadmin"
)

// benchConfig sizes the benchmark. The full run (make bench) takes about
// ten minutes on a 2-core machine, half of it the two 100,000-row
// imports; the quick one (BENCH_QUICK=1), which CI runs to keep the harness
// working, under two, and is never judged. --large adds the 1,000,000-row
// import (half an hour on DynamoDB Local) and reminds 100,000 pending
// users instead of 3,000 (a quarter of an hour).
type benchConfig struct {
	quick      bool
	large      bool
	runs       int
	out        string
	only       []string
	cpuProfile string

	// Warm-up: raw transactions and API requests before any measurement.
	warmUpRaw, warmUpAPI int
	// License operations: per run, operation and concurrency (1 or 16),
	// measured in blocks of blockOps alternating with the floor's.
	apiOps1, apiOps16     int
	blockOps1, blockOps16 int
	// Rows of the BatchWriteItem floor, and page reads of the Query floor.
	batchRows, queryOps int
	// The race: raceUsers assigns on a pool of racePool.
	raceUsers, racePool int
	// The long run: longRun in all, in slices alternating floor and API.
	longRun, longSlice time.Duration
	// Logs: the heavy user's entries, samples per run, the account's users.
	logEntries, logSamples, statsUsers int
	// Imports: the throughput imports' rows, and the sizes whose peak
	// memory is measured (importRows is measured anyway).
	importRows int
	rssRows    []int
	// startupRuns are the starts of each function whose median is taken.
	startupRuns int
	// phaseLimit bounds any one measured load, importLimit one import.
	phaseLimit, importLimit time.Duration
}

func fullBenchConfig() benchConfig {
	return benchConfig{
		runs:      3,
		warmUpRaw: 600, warmUpAPI: 200,
		apiOps1: 250, apiOps16: 320,
		blockOps1: 50, blockOps16: 160,
		batchRows: 3_000, queryOps: 200,
		raceUsers: 200, racePool: 50,
		longRun: 12 * time.Second, longSlice: 3 * time.Second,
		logEntries: 100_000, logSamples: 20, statsUsers: 1000,
		importRows:  100_000,
		rssRows:     []int{100_000},
		startupRuns: 10,
		phaseLimit:  3 * time.Minute, importLimit: 20 * time.Minute,
	}
}

func quickBenchConfig() benchConfig {
	return benchConfig{
		quick:     true,
		runs:      1,
		warmUpRaw: 500, warmUpAPI: 50,
		apiOps1: 40, apiOps16: 160,
		blockOps1: 20, blockOps16: 80,
		batchRows: 2_000, queryOps: 50,
		raceUsers: 200, racePool: 50,
		longRun: 5 * time.Second, longSlice: 2500 * time.Millisecond,
		logEntries: 10_000, logSamples: 8, statsUsers: 200,
		importRows:  2_000,
		rssRows:     []int{2_000, 8_000},
		startupRuns: 3,
		phaseLimit:  time.Minute, importLimit: 3 * time.Minute,
	}
}

func (c benchConfig) blockOps(conc int) int {
	if conc == 1 {
		return c.blockOps1
	}
	return c.blockOps16
}

func (c benchConfig) apiOps(conc int) int {
	if conc == 1 {
		return c.apiOps1
	}
	return c.apiOps16
}

// bench is one invocation of the benchmark.
type bench struct {
	cfg   benchConfig
	root  string
	out   io.Writer
	stack *benchStack
	figs  *figureSet
	run   int // the current run, from 0
	start time.Time
	// search is the search figure's data set, when measured: the data
	// step measures its page with the plain list's.
	search *benchSearch
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, "  [%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// Cmd is `go run ./infra/local bench` (make bench).
func Cmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "bench")
	quick := fs.Bool("quick", e.Getenv("BENCH_QUICK") == "1", "one short run (BENCH_QUICK=1): checks that the harness works; numbers are not judged")
	runs := fs.Int("runs", 0, "repeat the measurements this many times (default 3, quick 1)")
	out := fs.String("out", "bench/results.json", "where to write the figures as JSON, relative to the repository root")
	only := fs.String("only", "", "measure only these parts, comma-separated: "+strings.Join(benchSteps, ","))
	large := fs.Bool("large", e.Getenv("BENCH_LARGE") == "1", "also import 1,000,000 rows for the import's peak memory, and remind 100,000 pending users instead of 3,000 (BENCH_LARGE=1; adds about half an hour)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measurements (the API's handlers run in this process) to this file")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError{Msg: "bench takes no arguments"}
	}
	cfg := fullBenchConfig()
	if *quick {
		cfg = quickBenchConfig()
	}
	if *runs > 0 {
		if *runs > 10 {
			return cli.UsageError{Msg: "--runs is at most 10"}
		}
		cfg.runs = *runs
	}
	root, err := dynamolocal.ModuleRoot(e.Dir)
	if err != nil {
		return err
	}
	cfg.out = *out
	cfg.cpuProfile = *cpuProfile
	if *large {
		cfg.large = true
		cfg.rssRows = append(cfg.rssRows, 1_000_000)
		cfg.importLimit = time.Hour
	}
	if *only != "" {
		for _, step := range strings.Split(*only, ",") {
			if !slices.Contains(benchSteps, step) {
				return cli.UsageError{Msg: fmt.Sprintf("--only: unknown part %q (use %s)", step, strings.Join(benchSteps, ","))}
			}
			cfg.only = append(cfg.only, step)
		}
		if slices.Contains(cfg.only, "search") && !slices.Contains(cfg.only, "data") {
			return cli.UsageError{Msg: "--only search needs data too: the data step measures the search page with its floor, the plain list's page (--only data,search)"}
		}
	}
	if !filepath.IsAbs(cfg.out) {
		cfg.out = filepath.Join(root, cfg.out)
	}
	b := &bench{cfg: cfg, root: root, out: e.Stdout, figs: newFigureSet(cfg.runs), start: time.Now()}
	return b.main(ctx)
}

// benchSteps are the parts of the benchmark, in order; --only names some.
var benchSteps = []string{"sizes", "data", "search", "license", "race", "long", "logs", "stats", "import", "reminders", "startup", "ingest"}

func (b *bench) wants(step string) bool {
	return len(b.cfg.only) == 0 || slices.Contains(b.cfg.only, step)
}

func (b *bench) main(ctx context.Context) error {
	started := time.Now().UTC()
	machine := describeMachine(ctx)
	commit := describeCommit(ctx, b.root)
	mode := "full"
	if b.cfg.quick {
		mode = "quick (BENCH_QUICK=1: checks the harness; numbers are not judged)"
	}
	fmt.Fprintf(b.out, "License Admin benchmark, %s, %d run(s)\n", mode, b.cfg.runs)
	fmt.Fprintf(b.out, "machine: %s, %d cores, %d MB, %s, Go %s, Java: %s\n", machine.CPU, machine.Cores, machine.MemoryMB, machine.OS, machine.Go, machine.Java)
	fmt.Fprintf(b.out, "commit:  %s\n", commit)

	// The functions are built while the stack is set up: nothing is
	// measured before the builds are done.
	var pending *pendingBuilds
	if b.wants("sizes") || b.wants("startup") || b.wants("import") {
		pending = b.startBuilds(ctx)
		defer pending.remove()
	}
	stack, err := startBenchStack(ctx, b.root, b.out)
	if err != nil {
		return err
	}
	defer stack.stop()
	b.stack = stack
	if err := b.warmUp(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	// Data sets that take long to write are written once and measured in
	// every run.
	var logs *benchLogs
	if b.wants("logs") || b.wants("stats") {
		if logs, err = b.prepareLogs(ctx); err != nil {
			return fmt.Errorf("log entries: %w", err)
		}
	}
	if b.wants("search") {
		if b.search, err = b.prepareSearch(ctx); err != nil {
			return fmt.Errorf("search users: %w", err)
		}
	}
	var builds *benchBuilds
	if pending != nil {
		if builds, err = pending.wait(); err != nil {
			return err
		}
		if b.wants("sizes") {
			if err := builds.sizeFigures(); err != nil {
				return err
			}
		}
	}
	if b.cfg.cpuProfile != "" {
		stop, err := startCPUProfile(b.cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	b.defineCosts()
	for b.run = 0; b.run < b.cfg.runs; b.run++ {
		fmt.Fprintf(b.out, "run %d of %d\n", b.run+1, b.cfg.runs)
		steps := []struct {
			name string
			fn   func(context.Context) error
		}{
			{"data", b.batchQueryFigures},
			{"search", func(ctx context.Context) error { return b.search.writeCostFigures(ctx) }},
			{"license", b.licenseFigures},
			{"race", b.raceFigures},
			{"long", b.longRunFigures},
		}
		if logs != nil {
			steps = append(steps, []struct {
				name string
				fn   func(context.Context) error
			}{{"logs", logs.figures}, {"stats", logs.statsFigures}}...)
		}
		if builds != nil {
			steps = append(steps, struct {
				name string
				fn   func(context.Context) error
			}{"startup", builds.startupFigures})
		}
		for _, s := range steps {
			if !b.wants(s.name) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.fn(ctx); err != nil {
				return fmt.Errorf("run %d: %s: %w", b.run+1, s.name, err)
			}
		}
	}
	b.run = 0
	if b.wants("import") {
		if err := b.importFigures(ctx, builds); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	// Once per invocation, as the imports: at 100,000 users it takes
	// minutes.
	if b.wants("reminders") {
		if err := b.reminderFigures(ctx); err != nil {
			return fmt.Errorf("reminders: %w", err)
		}
	}
	// Once per invocation, last: its table's stream outlives the table in
	// DynamoDB Local (as a deleted table's stream does in DynamoDB, for a
	// day), and Local then looks it up on the SQLite thread that serves
	// every request, for every write: each step after the ingestion ran
	// four times slower in full runs.
	if b.wants("ingest") {
		if err := b.ingestFigures(ctx); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}

	fmt.Fprintln(b.out)
	b.figs.printTable(b.out, !b.cfg.quick)
	report := &benchReport{
		StartedAt: started, Seconds: time.Since(b.start).Seconds(), Quick: b.cfg.quick, Runs: b.cfg.runs,
		Machine: machine, Commit: commit, Figures: b.figs.jsonFigures(), Notes: b.figs.notes,
	}
	if err := os.MkdirAll(filepath.Dir(b.cfg.out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(b.cfg.out)
	if err != nil {
		return err
	}
	if err := report.write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nwrote %s in %s\n", b.cfg.out, time.Since(b.start).Round(time.Second))
	if f, ok := b.figs.byID["floor.long.ops"]; ok {
		if sp := spreadOf(f.values); sp.N > 0 {
			fmt.Fprintf(b.out, "DynamoDB Local's pace here: %.0f raw assign transactions/s at concurrency 16 (floor.long.ops; the targets were set on a machine that did 300-400): the run's length, mostly the imports, scales with it\n", sp.Median)
		}
	}
	return nil
}

// startCPUProfile profiles this process (the API's handlers run in it)
// into path until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// decodePool reads a pool summary answer.
func decodePool(body []byte) (*licadmin.Pool, error) {
	var p licadmin.Pool
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decode pool: %w", err)
	}
	return &p, nil
}
