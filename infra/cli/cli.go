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
)

// Env is what a command may use of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Dir is where the repository root (go.mod) is searched from.
	Dir string
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

// ParseFlags parses args with fs, turning a flag error into a UsageError.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err.Error()}
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
