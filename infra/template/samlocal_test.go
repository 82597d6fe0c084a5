package template_test

import (
	"testing"

	"licenseadmin/infra/template"
	"licenseadmin/shared/localauth"
)

// TestNoSAMLocalIdentityInAWS ensures that a deployed function can never
// check bearer tokens itself (localauth.FromEnv needs both variables):
// neither Globals nor any function declares AWS_SAM_LOCAL, and the local
// public key is declared, for the env file of sam local, only as the
// empty string, never from a parameter or any other value.
func TestNoSAMLocalIdentityInAWS(t *testing.T) {
	d := realDocument(t)
	check := func(where string, vars map[string]any) {
		if _, ok := vars[localauth.EnvSAMLocal]; ok {
			t.Errorf("%s: declares %s; only SAM CLI may set it", where, localauth.EnvSAMLocal)
		}
		if v, ok := vars[localauth.EnvPublicKey]; ok && v != "" {
			t.Errorf("%s: %s = %v; it must be the empty string in AWS", where, localauth.EnvPublicKey, v)
		}
	}
	globals, _ := template.Path(d.Globals, "Function.Environment.Variables").(map[string]any)
	if _, ok := globals[localauth.EnvPublicKey]; !ok {
		t.Errorf("Globals: %s is not declared: sam local passes only declared variables from the env file", localauth.EnvPublicKey)
	}
	check("Globals", globals)
	for _, fn := range d.Resources {
		if fn.Type != typeFunction {
			continue
		}
		vars, _ := template.Path(fn.Properties, "Environment.Variables").(map[string]any)
		check(fn.LogicalID, vars)
	}
}
