// Command local runs License Admin on this machine without AWS or Docker,
// and holds the operator tools that talk to it:
//
//	go run ./infra/local run                  # DynamoDB Local + the HTTP API
//	go run ./infra/local token you@example.com
//	go run ./infra/local account create --name Acme --admin admin@acme.example
//	go run ./infra/local licenses add --account ID --tier pro --quantity 10 --order o-1
//	go run ./infra/local domains approve --account ID --domain example.com
//	go run ./infra/local usage --email EMAIL --type sent|opened|downloaded|signed [--ip IP]
//
// Each tool prints one JSON object on stdout and exits non-zero with a
// message on stderr when it fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first Ctrl-C a command shuts down cleanly; a second one
		// gets the default behaviour and ends the process at once (DynamoDB
		// Local dies with it).
		<-ctx.Done()
		stop()
	}()
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
	os.Exit(dispatch(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, dir: dir}))
}

// env is what a command may use of the outside world, passed in so that
// tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// dir is where the repository root (go.mod) is searched from.
	dir string
}

// command is one subcommand. Its name may have several words ("account
// create"): the longest name that prefixes the arguments wins.
type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists the subcommands; add new ones here.
func commands() []command {
	return []command{
		{name: "run", summary: "run DynamoDB Local, the SES emulator, the stream function and the HTTP API in the foreground until Ctrl-C", run: runCmd},
		{name: "token", args: "EMAIL", summary: `print {"token"}: a bearer token the local API accepts for EMAIL (1 h); --unverified leaves out email_verified`, run: tokenCmd},
		{name: "account create", args: "--name NAME --admin EMAIL", summary: `create an account and its first admin; print {"accountId","adminUserId"}`, run: accountCreateCmd},
		{name: "licenses add", args: "--account ID --tier TIER --quantity N --order ORDER_ID", summary: "add purchased licenses (once per order id); print the pool", run: licensesAddCmd},
		{name: "domains approve", args: "--account ID --domain DOMAIN", summary: "approve an email domain for an account without DNS proof; print the domain", run: domainsApproveCmd},
		{name: "usage", args: "--email EMAIL --type sent|opened|downloaded|signed [--ip IP]", summary: `put one usage event on the local usage queue; print {"messageId","queueUrl","event"}`, run: usageCmd},
		{name: "bench", args: "[--quick] [--runs N] [--out FILE]", summary: "measure the system against the DynamoDB floor (make bench; BENCH_QUICK=1 for a short check)", run: benchCmd},
	}
}

// usageError is a mistake on the command line: the usage is printed and the
// exit status is 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// dispatch runs the command that args name and returns the exit status.
func dispatch(ctx context.Context, args []string, e *env) int {
	cmds := commands()
	cmd, rest, ok := lookup(cmds, args)
	if !ok {
		if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
			fmt.Fprintf(e.stderr, "local: unknown command %q\n\n", strings.Join(args, " "))
			usage(e.stderr, cmds)
			return 2
		}
		usage(e.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	err := cmd.run(ctx, e, rest)
	var uerr usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(e.stderr, "local %s: %v\nusage: go run ./infra/local %s %s\n", cmd.name, err, cmd.name, cmd.args)
		return 2
	default:
		fmt.Fprintf(e.stderr, "local %s: %v\n", cmd.name, err)
		return 1
	}
}

func lookup(cmds []command, args []string) (command, []string, bool) {
	var best command
	n := 0
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(words) > n && len(args) >= len(words) && equal(words, args[:len(words)]) {
			best, n = c, len(words)
		}
	}
	return best, args[n:], n > 0
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: go run ./infra/local COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
}

// newFlagSet returns a flag set for a command that reports errors instead
// of exiting, so that dispatch decides the exit status.
func newFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses args with fs, turning a flag error into a usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}
