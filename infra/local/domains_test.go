package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"licenseadmin/infra/dynamolocal"
)

// operatorEnv runs operator commands in-process against a fresh table of
// the tests' DynamoDB Local, as they run against `make run`'s.
type operatorEnv struct {
	t    *testing.T
	vars map[string]string
}

func newOperatorEnv(t *testing.T) *operatorEnv {
	t.Helper()
	client, table := dynamolocal.NewTable(t)
	return &operatorEnv{t: t, vars: map[string]string{
		"DYNAMODB_ENDPOINT": aws.ToString(client.Options().BaseEndpoint),
		"TABLE_NAME":        table,
	}}
}

// run dispatches args and returns the exit status, stdout and stderr.
func (o *operatorEnv) run(args ...string) (int, string, string) {
	o.t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return o.vars[k] }, Dir: o.t.TempDir()}
	code := dispatch(context.Background(), args, e)
	return code, stdout.String(), stderr.String()
}

// object decodes stdout as exactly one JSON object.
func object(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout %q is not a JSON object: %v", stdout, err)
	}
	if dec.More() {
		t.Fatalf("stdout %q holds more than one JSON value", stdout)
	}
	return m
}

// TestDomainsApproveCommand ensures `domains approve --account ID --domain
// D` approves a domain for an account without DNS and prints the domain as
// one JSON object; that a domain of another account, an unknown account,
// public webmail and an invalid name exit 1 with the error's code on
// stderr, and missing flags exit 2 with the usage.
func TestDomainsApproveCommand(t *testing.T) {
	o := newOperatorEnv(t)
	code, out, errOut := o.run("account", "create", "--name", "Acme", "--admin", "admin@acme.test")
	if code != 0 {
		t.Fatalf("account create: exit %d: %s", code, errOut)
	}
	acme := object(t, out)["accountId"].(string)
	code, out, errOut = o.run("account", "create", "--name", "Globex", "--admin", "boss@globex.test")
	if code != 0 {
		t.Fatalf("account create: exit %d: %s", code, errOut)
	}
	globex := object(t, out)["accountId"].(string)

	code, out, errOut = o.run("domains", "approve", "--account", acme, "--domain", "Mail.Acme.Example.")
	if code != 0 {
		t.Fatalf("domains approve: exit %d: %s", code, errOut)
	}
	d := object(t, out)
	if d["domain"] != "mail.acme.example" || d["status"] != "approved" || d["txtRecord"] != nil || d["approvedAt"] == nil {
		t.Fatalf("printed %s", out)
	}
	// Again: still approved, still exit 0.
	if code, _, errOut = o.run("domains", "approve", "--account", acme, "--domain", "mail.acme.example"); code != 0 {
		t.Fatalf("approving again: exit %d: %s", code, errOut)
	}

	cases := []struct {
		name string
		args []string
		exit int
		want string
	}{
		{"domain of another account", []string{"--account", globex, "--domain", "mail.acme.example"}, 1, "domain_claimed"},
		{"unknown account", []string{"--account", "01NOSUCHACCOUNT", "--domain", "free.example"}, 1, "not_found"},
		{"public webmail", []string{"--account", acme, "--domain", "gmail.com"}, 1, "domain_claimed"},
		{"invalid name", []string{"--account", acme, "--domain", "not a domain"}, 1, "invalid_domain"},
		{"no domain", []string{"--account", acme}, 2, "missing --domain\n"},
		{"no account", []string{"--domain", "free.example"}, 2, "usage: go run ./infra/local domains approve --account ID --domain DOMAIN"},
		{"extra argument", []string{"--account", acme, "--domain", "x.example", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := o.run(append([]string{"domains", "approve"}, c.args...)...)
			if code != c.exit || out != "" || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q on stderr", code, out, errOut, c.exit, c.want)
			}
		})
	}
	if code, _, errOut := o.run("help"); code != 0 || !strings.Contains(errOut, "domains approve --account ID --domain DOMAIN") {
		t.Fatalf("help does not list domains approve: %s", errOut)
	}
}
