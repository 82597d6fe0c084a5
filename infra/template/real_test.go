package template_test

import (
	"strings"
	"testing"

	"licenseadmin"
	"licenseadmin/infra/template"
)

// TestRealTemplate ensures the project's own template.yaml parses and has
// the shape the local stack relies on: a table with the pk/sk key and the
// gsi1 index, the ttl attribute, makefile builds from the repository root,
// and API routes that are absolute paths.
func TestRealTemplate(t *testing.T) {
	tpl := realTemplate(t)
	in, err := tpl.TableInput("x")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.KeySchema) != 2 || *in.KeySchema[0].AttributeName != "pk" || *in.KeySchema[1].AttributeName != "sk" {
		t.Errorf("key schema = %+v, want pk HASH, sk RANGE", in.KeySchema)
	}
	// The index the store queries: the list of users (a search reads the
	// table's own search entries).
	var gsis []string
	for _, g := range in.GlobalSecondaryIndexes {
		gsis = append(gsis, *g.IndexName)
	}
	if want := []string{"gsi1"}; strings.Join(gsis, ",") != strings.Join(want, ",") {
		t.Errorf("GSIs = %v, want %v", gsis, want)
	}
	if got := tpl.TTLAttribute(); got != "ttl" {
		t.Errorf("TTLAttribute() = %q, want ttl", got)
	}
	if len(tpl.Functions) == 0 {
		t.Fatal("no functions")
	}
	seen := map[string]string{}
	for _, fn := range tpl.Functions {
		if fn.CodeURI != "." || fn.BuildMethod != "makefile" {
			t.Errorf("%s: CodeUri %q BuildMethod %q, want . and makefile", fn.LogicalID, fn.CodeURI, fn.BuildMethod)
		}
		for _, r := range fn.Routes {
			if !strings.HasPrefix(r.Path, "/") {
				t.Errorf("%s: route %q is not an absolute path", fn.LogicalID, r.Key())
			}
			if other, dup := seen[r.Key()]; dup {
				t.Errorf("route %q is declared by %s and %s", r.Key(), other, fn.LogicalID)
			}
			seen[r.Key()] = fn.LogicalID
		}
	}
}

// realTemplate returns the project's own template.yaml, parsed.
func realTemplate(t *testing.T) *template.Template {
	t.Helper()
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}
