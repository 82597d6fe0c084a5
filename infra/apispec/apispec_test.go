package apispec_test

import (
	"context"
	"strings"
	"testing"

	"licenseadmin"
	"licenseadmin/infra/apispec"
	"licenseadmin/infra/template"
)

// TestSpecMatchesTemplate ensures openapi.yaml and template.yaml describe
// the same API: every HttpApi route of the template has its operation in
// the spec, and every operation of the spec whose function exists in the
// template (by the naming convention <operationId>Function) is routed to
// that function with the same method and path. Operations no function
// serves yet are listed in the test log.
func TestSpecMatchesTemplate(t *testing.T) {
	doc, err := apispec.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]apispec.Operation{}
	for _, op := range apispec.Operations(doc) {
		ops[op.Key()] = op
	}
	routed := map[string]string{} // route key -> function
	for _, fn := range tpl.Functions {
		for _, r := range fn.Routes {
			routed[r.Key()] = fn.LogicalID
			op, ok := ops[r.Key()]
			if !ok {
				t.Errorf("template.yaml routes %q to %s, but openapi.yaml has no such operation: describe it there (and in docs/api.md, the contract)", r.Key(), fn.LogicalID)
				continue
			}
			if r.Public != op.Public {
				t.Errorf("%q: public (no authorizer) in template.yaml is %v, in openapi.yaml (security: []) %v", r.Key(), r.Public, op.Public)
			}
		}
	}
	var pending []string
	for _, op := range apispec.Operations(doc) {
		fnID := op.ID + "Function"
		fn, exists := tpl.Function(fnID)
		switch {
		case routed[op.Key()] != "":
			// Served, by whichever function: checked above.
		case exists:
			var keys []string
			for _, r := range fn.Routes {
				keys = append(keys, r.Key())
			}
			t.Errorf("openapi.yaml's %s (%s) is not routed in template.yaml, but %s exists with routes %v", op.ID, op.Key(), fnID, keys)
		default:
			pending = append(pending, op.ID+" ("+op.Key()+")")
		}
	}
	if len(pending) > 0 {
		t.Logf("operations of openapi.yaml that template.yaml does not serve yet:\n  %s", strings.Join(pending, "\n  "))
	}
}

// TestOperationIDs ensures every operation has a unique operationId, which
// the fuzzing filters, the response-validation table and the function
// naming convention rely on.
func TestOperationIDs(t *testing.T) {
	doc, err := apispec.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, op := range apispec.Operations(doc) {
		if op.ID == "" {
			t.Errorf("%s has no operationId", op.Key())
			continue
		}
		if other, dup := seen[op.ID]; dup {
			t.Errorf("operationId %s is used by %s and %s", op.ID, other, op.Key())
		}
		seen[op.ID] = op.Key()
	}
}
