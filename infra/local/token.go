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
	"licenseadmin/shared/licadmin"
)

// tokenCmd prints {"token": "..."}, a bearer token for the email argument.
// With --unverified (before or after EMAIL) the token has no
// email_verified claim, as from an identity provider that did not verify
// the address: the API answers it 403 email_unverified unless the stack
// trusts unverified addresses (TRUST_UNVERIFIED_EMAIL=true).
func tokenCmd(_ context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "token")
	unverified := fs.Bool("unverified", false, "leave the email_verified claim out")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	arg := fs.Arg(0)
	if fs.NArg() > 0 {
		// Flags may follow EMAIL too.
		if err := cli.ParseFlags(fs, fs.Args()[1:]); err != nil {
			return err
		}
	}
	switch {
	case arg == "":
		return cli.UsageError{Msg: "missing EMAIL, the address to sign a token for"}
	case fs.NArg() > 0:
		return cli.UsageError{Msg: fmt.Sprintf("unexpected argument %q: token takes one EMAIL", fs.Arg(0))}
	}
	email := licadmin.NormalizeEmail(arg)
	if local, domain, ok := strings.Cut(email, "@"); !ok || local == "" || domain == "" || strings.ContainsAny(email, " \t<>") {
		return cli.UsageError{Msg: fmt.Sprintf("%q is not an email address", arg)}
	}
	root, err := dynamolocal.ModuleRoot(e.Dir)
	if err != nil {
		return err
	}
	key, err := stack.LoadOrCreateKey(root)
	if err != nil {
		return err
	}
	tok, err := stack.IssueToken(key, email, !*unverified, time.Now())
	if err != nil {
		return err
	}
	return json.NewEncoder(e.Stdout).Encode(struct {
		Token string `json:"token"`
	}{tok})
}
