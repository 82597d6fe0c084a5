package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"licenseadmin"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/template"
)

// TestFunctionsMatchTemplate ensures the template, the Makefile, the
// functions/ directories and the local registry describe the same set of
// Lambdas: every template function has a build-<LogicalId> target and a
// main.go that hands a handler to lambda.Start; every functions/ directory
// is built; every HTTP function is served locally with the very handler
// expression its main uses, so `make run` runs what AWS runs; and every
// scheduled function runs on the local scheduler.
func TestFunctionsMatchTemplate(t *testing.T) {
	root, tpl, dirs := project(t)
	registry := registryExprs(t, filepath.Join(root, "infra", "local", "handlers.go"))
	scheduled := registryExprs(t, filepath.Join(root, "infra", "local", "schedule.go"))

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
			t.Errorf("%s: on a schedule %v, in infra/local's scheduledHandlers %v: want both or neither", f.LogicalID, len(f.Schedules) > 0, ok)
		}
		if len(f.Routes) == 0 {
			if _, ok := registry[f.LogicalID]; ok {
				t.Errorf("%s has no HTTP route but is in the local API registry", f.LogicalID)
			}
			continue
		}
		want := asRegistered(start)
		if got, ok := registry[f.LogicalID]; !ok {
			t.Errorf("%s: HTTP function missing from infra/local/handlers.go", f.LogicalID)
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

// mustLoadCall matches the App a main builds, with or without features.
var mustLoadCall = regexp.MustCompile(`app\.MustLoad\([^()]*\)`)

// asRegistered rewrites a main's handler expression the way the local
// registries write it: the App built by app.MustLoad(...) is their `a`
// (the local stack wires every feature).
func asRegistered(start string) string { return mustLoadCall.ReplaceAllString(start, "a") }

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
