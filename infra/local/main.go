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

	"licenseadmin/infra/bench"
	"licenseadmin/infra/cli"
	"licenseadmin/infra/stack"
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
	os.Exit(dispatch(ctx, os.Args[1:], &env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Dir: dir, Prog: progName(os.Args[0])}))
}

// progName is how the usage names this command: as it was run when built
// (bin/licadmin), or "go run ./infra/local" when go run built it in a
// temporary directory.
func progName(arg0 string) string {
	if arg0 == "" || strings.Contains(arg0, "go-build") {
		return cli.DefaultProg
	}
	return arg0
}

// env is what a command may use of the outside world (infra/cli).
type env = cli.Env

// command is one subcommand. Its name may have several words ("account
// create"): the longest name that prefixes the arguments wins.
type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, e *cli.Env, args []string) error
}

// commands lists the subcommands; add new ones here.
func commands() []command {
	return []command{
		{name: "run", summary: "run the local stack (DynamoDB Local, the SES emulator, the S3 store, the queues, the stream and the HTTP API) in the foreground until Ctrl-C", run: stack.Run},
		{name: "token", args: "EMAIL", summary: `print {"token"}: a bearer token the local API accepts for EMAIL (1 h)`, run: tokenCmd},
		{name: "account create", args: "--name NAME --admin EMAIL", summary: `create an account and its first admin; print {"accountId","adminUserId"}`, run: accountCreateCmd},
		{name: "licenses add", args: "--account ID --tier TIER --quantity N --order ORDER_ID", summary: "add purchased licenses (once per order id); print the pool", run: licensesAddCmd},
		{name: "domains approve", args: "--account ID --domain DOMAIN", summary: "approve an email domain for an account without DNS proof; print the domain", run: domainsApproveCmd},
		{name: "usage", args: "--email EMAIL --type sent|opened|downloaded|signed [--ip IP]", summary: `put one usage event on the local usage queue; print {"messageId","queueUrl","event"}`, run: usageCmd},
		{name: "seed", summary: "create the account, users, domain, import, export, email and activation link that the sample events of infra/events name", run: stack.SeedCmd},
		{name: "sam-local", args: "[--port N] [--invoke-image IMAGE]", summary: "the local services for functions that SAM CLI runs in Docker, the env file, the sample world, and sam local start-api (make sam-local)", run: stack.SamLocalCmd},
		{name: "sam-test", args: "[--invoke-image IMAGE]", summary: "the sam local suite: routes through sam local start-api, events through sam local invoke (make test-sam-local)", run: stack.SamTestCmd},
		{name: "bench", args: "[--quick] [--runs N] [--out FILE]", summary: "measure the system against the DynamoDB floor (make bench; BENCH_QUICK=1 for a short check)", run: bench.Cmd},
	}
}

// dispatch runs the command that args name and returns the exit status.
func dispatch(ctx context.Context, args []string, e *cli.Env) int {
	cmds := commands()
	cmd, rest, ok := lookup(cmds, args)
	if !ok {
		if len(args) > 0 && !isHelp(args[0]) {
			if group := subcommands(cmds, args[0]); len(group) > 0 {
				// "account" alone, or with an unknown subcommand: list what
				// it has.
				if len(args) > 1 && !isHelp(args[1]) {
					fmt.Fprintf(e.Stderr, "local: unknown command %q\n\n", strings.Join(args, " "))
				}
				usage(e.Stderr, e.ProgName(), args[0]+" SUBCOMMAND", "subcommands of "+args[0]+":", group)
				if len(args) > 1 && isHelp(args[1]) {
					return 0
				}
				return 2
			}
			fmt.Fprintf(e.Stderr, "local: unknown command %q\n\n", strings.Join(args, " "))
			usage(e.Stderr, e.ProgName(), "COMMAND [FLAGS]", "commands:", cmds)
			return 2
		}
		usage(e.Stderr, e.ProgName(), "COMMAND [FLAGS]", "commands:", cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	err := cmd.run(ctx, e, rest)
	var uerr cli.UsageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(e.Stderr, "local %s: %v\nusage: %s %s\n", cmd.name, err, e.ProgName(), strings.TrimSpace(cmd.name+" "+cmd.args))
		return 2
	default:
		fmt.Fprintf(e.Stderr, "local %s: %v\n", cmd.name, err)
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
