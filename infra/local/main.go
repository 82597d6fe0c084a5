// Command local runs License Admin on this machine without AWS or Docker,
// and holds the operator tools that talk to it. Run it with no arguments
// for every command and its required flags; build it once for repeated use
// (go build -o bin/licadmin ./infra/local):
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
	os.Exit(dispatch(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, dir: dir, prog: progName(os.Args[0])}))
}

// progName is how the usage names this command: as it was run when built
// (bin/licadmin), or "go run ./infra/local" when go run built it in a
// temporary directory.
func progName(arg0 string) string {
	if arg0 == "" || strings.Contains(arg0, "go-build") {
		return defaultProg
	}
	return arg0
}

// defaultProg is the command line the usage shows when the program's own
// name says nothing useful.
const defaultProg = "go run ./infra/local"

// env is what a command may use of the outside world, passed in so that
// tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// dir is where the repository root (go.mod) is searched from.
	dir string
	// prog is how the usage names the command (defaultProg when empty).
	prog string
}

// progName returns how the usage should name the command.
func (e *env) progName() string {
	if e.prog == "" {
		return defaultProg
	}
	return e.prog
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
		{name: "token", args: "EMAIL", summary: `print {"token"}: a bearer token the local API accepts for EMAIL (1 h)`, run: tokenCmd},
		{name: "account create", args: "--name NAME --admin EMAIL", summary: `create an account and its first admin; print {"accountId","adminUserId"}`, run: accountCreateCmd},
		{name: "licenses add", args: "--account ID --tier TIER --quantity N --order ORDER_ID", summary: "add purchased licenses (once per order id); print the pool", run: licensesAddCmd},
		{name: "domains approve", args: "--account ID --domain DOMAIN", summary: "approve an email domain for an account without DNS proof; print the domain", run: domainsApproveCmd},
		{name: "usage", args: "--email EMAIL --type sent|opened|downloaded|signed [--ip IP]", summary: `put one usage event on the local usage queue; print {"messageId","queueUrl","event"}`, run: usageCmd},
		{name: "seed", summary: "create the account, users, domain, import, export, email and activation link that the sample events of infra/events name", run: seedCmd},
		{name: "sam-local", args: "[--port N] [--invoke-image IMAGE]", summary: "the local services for functions that SAM CLI runs in Docker, the env file, the sample world, and sam local start-api (make sam-local)", run: samLocalCmd},
		{name: "sam-test", args: "[--invoke-image IMAGE]", summary: "the sam local suite: routes through sam local start-api, events through sam local invoke (make test-sam-local)", run: samTestCmd},
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
		if len(args) > 0 && !isHelp(args[0]) {
			if group := subcommands(cmds, args[0]); len(group) > 0 {
				// "account" alone, or with an unknown subcommand: list what
				// it has.
				if len(args) > 1 && !isHelp(args[1]) {
					fmt.Fprintf(e.stderr, "local: unknown command %q\n\n", strings.Join(args, " "))
				}
				usage(e.stderr, e.progName(), args[0]+" SUBCOMMAND", "subcommands of "+args[0]+":", group)
				if len(args) > 1 && isHelp(args[1]) {
					return 0
				}
				return 2
			}
			fmt.Fprintf(e.stderr, "local: unknown command %q\n\n", strings.Join(args, " "))
			usage(e.stderr, e.progName(), "COMMAND [FLAGS]", "commands:", cmds)
			return 2
		}
		usage(e.stderr, e.progName(), "COMMAND [FLAGS]", "commands:", cmds)
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
		fmt.Fprintf(e.stderr, "local %s: %v\nusage: %s %s\n", cmd.name, err, e.progName(), strings.TrimSpace(cmd.name+" "+cmd.args))
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

// isHelp reports whether arg asks for the usage.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help"
}

// subcommands returns the commands whose name starts with the word group
// ("account" for "account create").
func subcommands(cmds []command, group string) []command {
	var out []command
	for _, c := range cmds {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}

// usage prints the synopsis and, for each command, its line with the
// flags it requires, then what it does.
func usage(w io.Writer, prog, synopsis, title string, cmds []command) {
	fmt.Fprintf(w, "usage: %s %s\n\n%s\n", prog, synopsis, title)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\n%s COMMAND -h describes a command's flags, optional ones included.\n", prog)
}

// newFlagSet returns a flag set for a command that reports errors instead
// of exiting, so that dispatch decides the exit status.
func newFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// requireFlags returns a usageError naming every flag of names that was
// not given, or given empty, and any argument left after the flags, which
// no flag-only command takes.
func requireFlags(fs *flag.FlagSet, names ...string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() != "" })
	var missing []string
	for _, n := range names {
		if !given[n] {
			missing = append(missing, "--"+n)
		}
	}
	switch {
	case len(missing) == 1:
		return usageError{"missing " + missing[0]}
	case len(missing) > 1:
		return usageError{"missing " + strings.Join(missing[:len(missing)-1], ", ") + " and " + missing[len(missing)-1]}
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("unexpected argument %q: every value goes after its flag", fs.Arg(0))}
	}
	return nil
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
