package stack

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/localsqs"
	"licenseadmin/infra/streamlocal"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
)

// TestFunctionsMatchTemplate ensures the template, the Makefile, the
// functions/ directories and the local registry describe the same set of
// Lambdas: every template function has a build-<LogicalId> target and a
// main.go that hands a handler to lambda.Start; every functions/ directory
// is built; and every HTTP function is served locally with the very handler
// expression its main uses, so `make run` runs what AWS runs.
func TestFunctionsMatchTemplate(t *testing.T) {
	root, tpl, dirs := project(t)
	registry := registryExprs(t, filepath.Join(root, "infra", "stack", "handlers.go"))
	scheduled := registryExprs(t, filepath.Join(root, "infra", "stack", "schedule.go"))

	inTemplate := map[string]bool{}
	for _, f := range tpl.Functions {
		inTemplate[f.LogicalID] = true
		if f.BuildMethod != "makefile" || f.CodeURI != "." {
			t.Errorf("%s: BuildMethod %q CodeUri %q, want makefile and . (one go.mod at the root)", f.LogicalID, f.BuildMethod, f.CodeURI)
		}
		dir, ok := dirs[f.LogicalID]
		if !ok {
			t.Errorf("%s: no entry in the Makefile's FUNCTIONS, so no build-%s target", f.LogicalID, f.LogicalID)
			continue
		}
		start := lambdaStartExpr(t, filepath.Join(root, "functions", dir, "main.go"))
		if start == "" {
			continue
		}
		if _, ok := scheduled[f.LogicalID]; ok != (len(f.Schedules) > 0) {
			t.Errorf("%s: on a schedule %v, in infra/stack's scheduledHandlers %v: want both or neither", f.LogicalID, len(f.Schedules) > 0, ok)
		}
		if len(f.Routes) == 0 {
			if _, ok := registry[f.LogicalID]; ok {
				t.Errorf("%s has no HTTP route but is in the local API registry", f.LogicalID)
			}
			continue
		}
		want := asRegistered(start)
		if got, ok := registry[f.LogicalID]; !ok {
			t.Errorf("%s: HTTP function missing from infra/stack/handlers.go", f.LogicalID)
		} else if got != want {
			t.Errorf("%s: local registry serves %s, but main.go starts %s", f.LogicalID, got, start)
		}
	}
	for id := range dirs {
		if !inTemplate[id] {
			t.Errorf("Makefile builds %s, which template.yaml does not declare", id)
		}
	}
	for id := range registry {
		if !inTemplate[id] {
			t.Errorf("local registry serves %s, which template.yaml does not declare", id)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	built := map[string]bool{}
	for _, d := range dirs {
		built[d] = true
	}
	for _, e := range entries {
		if e.IsDir() && !built[e.Name()] {
			t.Errorf("functions/%s is not built by the Makefile nor declared in template.yaml", e.Name())
		}
	}
}

// makeFunctions reads the Makefile's FUNCTIONS list: LogicalId:directory.
func makeFunctions(t *testing.T, makefile []byte) map[string]string {
	t.Helper()
	block := regexp.MustCompile(`(?s)FUNCTIONS\s*:=\s*((?:[^\n]*\\\n)*[^\n]*)`).FindSubmatch(makefile)
	if block == nil {
		t.Fatal("the Makefile has no FUNCTIONS := list")
	}
	out := map[string]string{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(block[1]), "\\", " ")) {
		id, dir, ok := strings.Cut(f, ":")
		if !ok {
			t.Fatalf("FUNCTIONS entry %q is not LogicalId:directory", f)
		}
		out[id] = dir
	}
	if !bytes.Contains(makefile, []byte("build-$(1):")) {
		t.Error("the Makefile does not define build-<LogicalId> targets from FUNCTIONS")
	}
	return out
}

// registryExprs returns each entry of apiHandlers as source text.
func registryExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if lit, ok := kv.Key.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			out[strings.Trim(lit.Value, `"`)] = source(fset, kv.Value)
		}
		return true
	})
	return out
}

// lambdaStartExpr returns the argument of lambda.Start in a main.go, and
// checks that main is nothing but wiring.
func lambdaStartExpr(t *testing.T, path string) string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return ""
	}
	var arg string
	var funcs []string
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			funcs = append(funcs, fd.Name.Name)
			if fd.Name.Name == "main" && len(fd.Body.List) == 1 {
				if call, ok := fd.Body.List[0].(*ast.ExprStmt); ok {
					if c, ok := call.X.(*ast.CallExpr); ok && source(fset, c.Fun) == "lambda.Start" && len(c.Args) == 1 {
						arg = source(fset, c.Args[0])
					}
				}
			}
		}
	}
	sort.Strings(funcs)
	if arg == "" || len(funcs) != 1 {
		t.Errorf("%s: main must be one lambda.Start(handler) statement and nothing else (functions: %v)", path, funcs)
	}
	return arg
}

func source(fset *token.FileSet, n ast.Node) string {
	var b bytes.Buffer
	_ = printer.Fprint(&b, fset, n)
	return b.String()
}

// asRegistered rewrites a main's handler expression the way the local
// registries write it: app.MustLoad is their load, which builds the
// function's App with the same features.
func asRegistered(start string) string { return strings.ReplaceAll(start, "app.MustLoad(", "load(") }

// project returns what the registry tests compare: the repository root, the
// parsed template, and the Makefile's LogicalId → functions/ directory.
func project(t *testing.T) (root string, tpl *template.Template, dirs map[string]string) {
	t.Helper()
	root, err := dynamolocal.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if tpl, err = template.Parse(licenseadmin.Template); err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	return root, tpl, makeFunctions(t, makefile)
}

// checkRegistry ensures the local registry in file (relative to the root)
// serves exactly the functions ids, each with the very handler expression
// its main starts; what names the kind of event in messages.
func checkRegistry(t *testing.T, root string, dirs map[string]string, file, what string, ids []string) {
	t.Helper()
	registry := registryExprs(t, filepath.Join(root, file))
	for _, id := range ids {
		start := lambdaStartExpr(t, filepath.Join(root, "functions", dirs[id], "main.go"))
		if got, ok := registry[id]; !ok {
			t.Errorf("%s: %s function missing from %s", id, what, file)
		} else if got != asRegistered(start) {
			t.Errorf("%s: %s serves %s, but main.go starts %s", id, file, got, start)
		}
		delete(registry, id)
	}
	for id := range registry {
		t.Errorf("%s serves %s, which has no %s event in template.yaml", file, id, what)
	}
}

// TestEventRegistriesMatchTemplate ensures every template function fed by
// a queue, the bucket or the table's stream is served locally with the
// very handler expression its main starts, and that each registry names no
// other function.
func TestEventRegistriesMatchTemplate(t *testing.T) {
	root, tpl, dirs := project(t)
	for _, r := range []struct{ event, file string }{
		{"SQS", "infra/stack/queues.go"},
		{"S3", "infra/stack/s3handlers.go"},
		{"DynamoDB", "infra/stack/email.go"},
	} {
		checkRegistry(t, root, dirs, r.file, r.event, tpl.FunctionsWithEvents(r.event))
	}
}

// TestEachFunctionLoadsItsOwnApp ensures the registries build one App per
// function, through load, rather than share one that holds every feature:
// so a function gets only what its main asks for.
func TestEachFunctionLoadsItsOwnApp(t *testing.T) {
	cfg := app.Config{TableName: "t", Region: "us-east-1", DynamoDBEndpoint: "http://127.0.0.1:1"}
	seen := map[*app.App]bool{}
	calls := 0
	load := func(features ...app.Feature) *app.App {
		a, err := app.Load(context.Background(), cfg, features)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		seen[a] = true
		return a
	}
	n := len(apiHandlers(load)) + len(queueHandlers(load)) + len(s3Handlers(load)) + len(streamHandlers(load))
	if calls != n || len(seen) != n {
		t.Fatalf("%d handlers from %d loads of %d Apps, want one App per handler", n, calls, len(seen))
	}
	if a := load(); a.Imports.Files != nil || a.Notify != nil || a.Exports.Queue != nil {
		t.Fatal("an App loaded without features has files, email or the export queue")
	}
}

// TestLocalQueuesFollowTemplate ensures the local SQS serves every queue
// of the template, each consumed one with its event's BatchSize and
// batch item failures, its queue's VisibilityTimeout and redrive policy,
// and its function's Timeout as the invocation's deadline.
func TestLocalQueuesFollowTemplate(t *testing.T) {
	_, tpl, _ := project(t)
	sources, err := tpl.QueueSources()
	if err != nil {
		t.Fatal(err)
	}
	nop := func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
		return events.SQSEventResponse{}, nil
	}
	queues, err := LocalQueueSet(tpl, sources, map[string]localsqs.Handler{"IngestUsageFunction": nop, "ExportLogsFunction": nop, "SendRemindersFunction": nop})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]localsqs.Queue{}
	for _, q := range queues {
		byName[q.Name] = q
	}
	if !slices.Equal(slices.Sorted(maps.Keys(byName)), tpl.Queues()) {
		t.Fatalf("local queues %v, want the template's %v", slices.Sorted(maps.Keys(byName)), tpl.Queues())
	}
	usage, export := byName["UsageQueue"], byName["ExportQueue"]
	if usage.Handler == nil || usage.BatchSize != 25 || usage.Visibility != 180*time.Second || usage.MaxReceiveCount != 5 ||
		usage.DeadLetter != "UsageDeadLetterQueue" || usage.Timeout != 30*time.Second || !usage.ReportBatchItemFailures {
		t.Errorf("UsageQueue %+v", usage)
	}
	if export.Handler == nil || export.BatchSize != 1 || export.Visibility != 1800*time.Second || export.DeadLetter != "ExportDeadLetterQueue" ||
		export.Timeout != 300*time.Second {
		t.Errorf("ExportQueue %+v", export)
	}
	for _, name := range []string{"UsageDeadLetterQueue", "ExportDeadLetterQueue", "StreamFailureQueue", "ImportFailureQueue", "ReminderDeadLetterQueue"} {
		if q, ok := byName[name]; !ok || q.Handler != nil {
			t.Errorf("%s: %+v, want a queue that keeps its messages", name, q)
		}
	}
	if _, err := LocalQueueSet(tpl, sources, nil); err == nil {
		t.Error("queues built without their functions' handlers")
	}
}

// TestStreamPollersFollowTemplate ensures the table's stream is read for
// each DynamoDB event of the template with the event's FilterCriteria,
// BatchSize, MaximumRetryAttempts and BisectBatchOnFunctionError, its
// function's Timeout, and its on-failure queue.
func TestStreamPollersFollowTemplate(t *testing.T) {
	_, tpl, _ := project(t)
	nop := func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		return events.DynamoDBEventResponse{}, nil
	}
	var sent []string
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1"})
	pollers, err := streamPollers(tpl, map[string]streamlocal.Handler{"ProcessTableStreamFunction": nop, "RecordUsageFunction": nop}, db, "t",
		func(queue string, _ []byte) error { sent = append(sent, queue); return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(pollers) != 2 {
		t.Fatalf("%d pollers, want one per DynamoDB event", len(pollers))
	}
	p := pollers[0]
	if p.Function != "ProcessTableStreamFunction" {
		p = pollers[1]
	}
	if p.Function != "ProcessTableStreamFunction" || p.BatchSize != 10 || p.Retries != 10 || !p.Bisect || p.Timeout != time.Minute || p.Filter == nil || p.OnFailure == nil {
		t.Fatalf("poller %+v", p)
	}
	if err := p.OnFailure(context.Background(), []byte("{}")); err != nil || !slices.Equal(sent, []string{"StreamFailureQueue"}) {
		t.Fatalf("on-failure destination: %v, sent to %v", err, sent)
	}
	outbox := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: map[string]events.DynamoDBAttributeValue{
		"pk": events.NewStringAttribute("OUTBOX#1"), "sk": events.NewStringAttribute("OUTBOX")}}}
	logEntry := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{Keys: map[string]events.DynamoDBAttributeValue{
		"pk": events.NewStringAttribute("LOG#u1#0"), "sk": events.NewStringAttribute("2026")}}}
	if !p.Filter.Match(outbox) || p.Filter.Match(logEntry) {
		t.Fatal("the poller's filter is not the template's")
	}
	if _, err := streamPollers(tpl, nil, db, "t", nil, slog.Default()); err == nil {
		t.Error("pollers built without their functions' handlers")
	}
}
