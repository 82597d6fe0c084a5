package main

import (
	"context"
	"encoding/json"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/stack"
	"licenseadmin/shared/operator"
)

// The operator commands call the same operator.Service that the
// CreateAccount, AddLicenses and ApproveDomain functions run in AWS, against
// the table of the stack that `make run` started.

func accountCreateCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "account create")
	name := fs.String("name", "", "the account's name")
	admin := fs.String("admin", "", "the first admin's email; its domain is approved for the account")
	lang := fs.String("language", "en", "the admin's language: fr or en")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := cli.RequireFlags(fs, "name", "admin"); err != nil {
		return err
	}
	return withOperator(ctx, e, func(ctx context.Context, s *operator.Service) (any, error) {
		return s.CreateAccount(ctx, operator.CreateAccountInput{Name: *name, AdminEmail: *admin, Language: *lang})
	})
}

func licensesAddCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "licenses add")
	account := fs.String("account", "", "the account id")
	tier := fs.String("tier", "", "eco, advanced or pro")
	quantity := fs.Int64("quantity", 0, "how many licenses to add")
	order := fs.String("order", "", "the billing order id; the same id twice adds once")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := cli.RequireFlags(fs, "account", "tier", "quantity", "order"); err != nil {
		return err
	}
	return withOperator(ctx, e, func(ctx context.Context, s *operator.Service) (any, error) {
		return s.AddLicenses(ctx, operator.AddLicensesInput{AccountID: *account, Tier: *tier, Quantity: *quantity, OrderID: *order})
	})
}

func domainsApproveCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "domains approve")
	account := fs.String("account", "", "the account id")
	domain := fs.String("domain", "", "the email domain to approve, such as example.com")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := cli.RequireFlags(fs, "account", "domain"); err != nil {
		return err
	}
	return withOperator(ctx, e, func(ctx context.Context, s *operator.Service) (any, error) {
		return s.ApproveDomain(ctx, operator.ApproveDomainInput{AccountID: *account, Domain: *domain})
	})
}

// withOperator builds the App for the local stack, runs op, and prints its
// result as one JSON object.
func withOperator(ctx context.Context, e *cli.Env, op func(context.Context, *operator.Service) (any, error)) error {
	ctx, cancel, a, err := stack.LocalApp(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	out, err := op(ctx, a.Operator)
	if err != nil {
		return stack.Explain(err, a.Config)
	}
	return json.NewEncoder(e.Stdout).Encode(out)
}
