// Package cli holds what the local commands (the operator command,
// the local stack, the benchmark) share: the outside world they may use,
// passed in so that tests run them in-process, and the handling of their
// command lines.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Env is what a command may use of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Dir is where the repository root (go.mod) is searched from.
	Dir string
	// Prog is how the usage names the command (DefaultProg when empty).
	Prog string
}

// DefaultProg is the command line the usage shows when the program's own
// name says nothing useful.
const DefaultProg = "go run ./infra/local"

// ProgName returns how the usage should name the command.
func (e *Env) ProgName() string {
	if e.Prog == "" {
		return DefaultProg
	}
	return e.Prog
}

// UsageError is a mistake on the command line: the usage is printed and
// the exit status is 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// NewFlagSet returns a flag set for a command that reports errors instead
// of exiting, so that the caller decides the exit status.
func NewFlagSet(e *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	return fs
}

// RequireFlags returns a UsageError naming every flag of names that was
// not given, or given empty, and any argument left after the flags, which
// no flag-only command takes.
func RequireFlags(fs *flag.FlagSet, names ...string) error {
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
		return UsageError{Msg: "missing " + missing[0]}
	case len(missing) > 1:
		return UsageError{Msg: "missing " + strings.Join(missing[:len(missing)-1], ", ") + " and " + missing[len(missing)-1]}
	case fs.NArg() > 0:
		return UsageError{Msg: fmt.Sprintf("unexpected argument %q: every value goes after its flag", fs.Arg(0))}
	}
	return nil
}

// ParseFlags parses args with fs, turning a flag error into a UsageError.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{Msg: err.Error()}
	}
	return nil
}

// Port returns the port the environment variable name sets, or def.
func Port(e *Env, name string, def int) (int, error) {
	v := e.Getenv(name)
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%s %q: want a port number (0 picks a free one)", name, v)
	}
	return p, nil
}
