package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/stack"
)

// tokenCmd prints {"token": "..."}, a bearer token for the email argument.
func tokenCmd(_ context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "token")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return cli.UsageError{Msg: "missing EMAIL, the address to sign a token for"}
	case fs.NArg() > 1:
		return cli.UsageError{Msg: fmt.Sprintf("unexpected argument %q: token takes one EMAIL", fs.Arg(1))}
	}
	email := strings.ToLower(strings.TrimSpace(fs.Arg(0)))
	if local, domain, ok := strings.Cut(email, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(email, " \t<>") {
		return cli.UsageError{Msg: fmt.Sprintf("%q is not an email address", fs.Arg(0))}
	}
	root, err := dynamolocal.ModuleRoot(e.Dir)
	if err != nil {
		return err
	}
	key, err := stack.LoadOrCreateKey(root)
	if err != nil {
		return err
	}
	tok, err := stack.IssueToken(key, email, time.Now())
	if err != nil {
		return err
	}
	return json.NewEncoder(e.Stdout).Encode(struct {
		Token string `json:"token"`
	}{tok})
}
