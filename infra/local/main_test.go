package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/seslocal"
)

func TestMain(m *testing.M) {
	code := dynamolocal.RunTests(m)
	seslocal.StopShared()
	os.Exit(code)
}

// TestDispatch ensures unknown commands and help print the usage with the
// right exit status.
func TestDispatch(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{nil, 2, "usage:"},
		{[]string{"help"}, 0, "token EMAIL"},
		{[]string{"-h"}, 0, "run"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"run", "extra"}, 2, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Dir: t.TempDir()}
			if code := dispatch(context.Background(), tt.args, e); code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

// TestLookup ensures multi-word commands ("account create") win over
// shorter prefixes and leave the rest of the arguments.
func TestLookup(t *testing.T) {
	cmds := []command{{name: "account"}, {name: "account create"}, {name: "token"}}
	tests := []struct {
		args     []string
		wantName string
		wantRest []string
	}{
		{[]string{"account", "create", "--name", "x"}, "account create", []string{"--name", "x"}},
		{[]string{"account", "list"}, "account", []string{"list"}},
		{[]string{"token", "a@b.c"}, "token", []string{"a@b.c"}},
		{[]string{"tok"}, "", nil},
	}
	for _, tt := range tests {
		c, rest, ok := lookup(cmds, tt.args)
		if tt.wantName == "" {
			if ok {
				t.Errorf("%v: found %q", tt.args, c.name)
			}
			continue
		}
		if !ok || c.name != tt.wantName || strings.Join(rest, " ") != strings.Join(tt.wantRest, " ") {
			t.Errorf("%v: got %q %v, want %q %v", tt.args, c.name, rest, tt.wantName, tt.wantRest)
		}
	}
}
