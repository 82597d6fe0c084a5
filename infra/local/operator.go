package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"licenseadmin/shared/app"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
)

// The operator commands call the same operator.Service that the
// CreateAccount, AddLicenses and ApproveDomain functions run in AWS, against
// the table of the stack that `make run` started.

func accountCreateCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "account create")
	name := fs.String("name", "", "the account's name")
	admin := fs.String("admin", "", "the first admin's email; its domain is approved for the account")
	lang := fs.String("language", "en", "the admin's language: fr or en")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireFlags(fs, "name", "admin"); err != nil {
		return err
	}
	return withOperator(ctx, e, func(ctx context.Context, s *operator.Service) (any, error) {
		return s.CreateAccount(ctx, operator.CreateAccountInput{Name: *name, AdminEmail: *admin, Language: *lang})
	})
}

func licensesAddCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "licenses add")
	account := fs.String("account", "", "the account id")
	tier := fs.String("tier", "", "eco, advanced or pro")
	quantity := fs.Int64("quantity", 0, "how many licenses to add")
	order := fs.String("order", "", "the billing order id; the same id twice adds once")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireFlags(fs, "account", "tier", "quantity", "order"); err != nil {
		return err
	}
	return withOperator(ctx, e, func(ctx context.Context, s *operator.Service) (any, error) {
		return s.AddLicenses(ctx, operator.AddLicensesInput{AccountID: *account, Tier: *tier, Quantity: *quantity, OrderID: *order})
	})
}

func domainsApproveCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "domains approve")
	account := fs.String("account", "", "the account id")
	domain := fs.String("domain", "", "the email domain to approve, such as example.com")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireFlags(fs, "account", "domain"); err != nil {
		return err
	}
	return withOperator(ctx, e, func(ctx context.Context, s *operator.Service) (any, error) {
		return s.ApproveDomain(ctx, operator.ApproveDomainInput{AccountID: *account, Domain: *domain})
	})
}

// withOperator builds the App for the local stack, runs op, and prints its
// result as one JSON object.
func withOperator(ctx context.Context, e *env, op func(context.Context, *operator.Service) (any, error)) error {
	ctx, cancel, a, err := localApp(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	out, err := op(ctx, a.Operator)
	if err != nil {
		return explain(err, a.Config)
	}
	return json.NewEncoder(e.stdout).Encode(out)
}

// localApp builds the App of the stack that `make run` started, for a
// command of the operator tool; the returned context bounds the command.
func localApp(ctx context.Context, e *env) (context.Context, context.CancelFunc, *app.App, error) {
	cfg, err := appConfig(e)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	a, err := app.New(ctx, cfg)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, cancel, a, nil
}

// explain turns an error into what to do about it.
func explain(err error, cfg app.Config) error {
	var ae *licadmin.Error
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ae):
		msg := ae.Code + ": " + ae.Message
		for _, f := range ae.Fields {
			msg += fmt.Sprintf(" (%s: %s)", f.Field, f.Code)
		}
		return errors.New(msg)
	case errors.As(err, &oe), errors.As(err, &ne):
		return fmt.Errorf("cannot reach DynamoDB at %s: start the local stack with `make run` first (or set DYNAMODB_ENDPOINT): %w", cfg.DynamoDBEndpoint, err)
	case strings.Contains(err.Error(), "ResourceNotFoundException"):
		return fmt.Errorf("table %q does not exist at %s: start the local stack with `make run` (it creates the table), or set TABLE_NAME", cfg.TableName, cfg.DynamoDBEndpoint)
	}
	return err
}
