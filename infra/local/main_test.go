package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"licenseadmin/shared/apitest"
)

func TestMain(m *testing.M) { os.Exit(apitest.RunTests(m)) }

// TestDispatch ensures unknown commands and help print the usage with the
// right exit status, that the usage shows every command with its required
// flags, that a group of commands alone ("account") lists its
// subcommands, and that a mistake names the flag that is missing.
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
		// Every command with the flags it requires.
		{nil, 2, "account create --name NAME --admin EMAIL"},
		{nil, 2, "licenses add --account ID --tier TIER --quantity N --order ORDER_ID"},
		{nil, 2, "domains approve --account ID --domain DOMAIN"},
		{nil, 2, "usage --email EMAIL --type"},
		{nil, 2, "token EMAIL"},
		// A group alone lists its subcommands.
		{[]string{"account"}, 2, "subcommands of account:\n  account create --name NAME --admin EMAIL"},
		{[]string{"licenses"}, 2, "licenses add --account ID"},
		{[]string{"account", "-h"}, 0, "account create"},
		{[]string{"account", "delete"}, 2, `unknown command "account delete"`},
		// Errors name what is missing.
		{[]string{"account", "create", "--name", "Acme"}, 2, "missing --admin\n"},
		{[]string{"account", "create", "--name", "", "--admin", "a@b.c"}, 2, "missing --name\n"},
		{[]string{"licenses", "add", "--account", "A", "--tier", "pro"}, 2, "missing --quantity and --order\n"},
		{[]string{"domains", "approve", "--domain", "d.example", "x"}, 2, "missing --account\n"},
		{[]string{"domains", "approve", "--account", "A", "--domain", "d.example", "x"}, 2, `unexpected argument "x"`},
		{[]string{"usage", "--type", "sent"}, 2, "missing --email\n"},
		{[]string{"token"}, 2, "missing EMAIL"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Dir: t.TempDir()}
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

// TestUsageNamesRequiredFlags ensures each command's usage line shows
// exactly the flags it refuses to run without (those outside brackets), so
// the list the command prints cannot drift from what it checks.
func TestUsageNamesRequiredFlags(t *testing.T) {
	optional := regexp.MustCompile(`\[[^\]]*\]`)
	flagName := regexp.MustCompile(`--[a-z][a-z-]*`)
	for _, c := range commands() {
		required := flagName.FindAllString(optional.ReplaceAllString(c.args, ""), -1)
		if len(required) == 0 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, Dir: t.TempDir()}
			if code := dispatch(context.Background(), strings.Fields(c.name), e); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			want := "missing " + required[len(required)-1]
			if len(required) > 1 {
				want = "missing " + strings.Join(required[:len(required)-1], ", ") + " and " + required[len(required)-1]
			}
			if !strings.Contains(stderr.String(), want+"\n") {
				t.Errorf("stderr %q, want %q: the usage line and the flags the command requires disagree", stderr.String(), want)
			}
		})
	}
}
