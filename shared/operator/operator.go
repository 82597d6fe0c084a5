// Package operator holds the operations that have no HTTP route: creating
// an account with its first admin, and adding purchased licenses to a pool.
// Operators and billing invoke them with IAM (their own Lambda functions);
// the local operator command calls the same Service.
package operator

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"licenseadmin/shared/licadmin"
)

// Store is what the operator paths need from storage.
type Store interface {
	CreateAccount(ctx context.Context, accountID, name string, admin *licadmin.User, domain string, now time.Time) (string, string, error)
	AddLicenses(ctx context.Context, accountID string, tier licadmin.Tier, quantity int64, orderID string, now time.Time) (*licadmin.Pool, error)
	Domain(ctx context.Context, accountID, domain string) (*licadmin.Domain, string, error)
	ApproveDomain(ctx context.Context, c *licadmin.Caller, accountID, domain string, d *licadmin.Domain, now time.Time) (*licadmin.Domain, error)
}

// Service runs operator operations.
type Service struct {
	Store   Store
	Now     licadmin.Clock
	NewID   licadmin.IDSource
	Webmail licadmin.Webmail
}

// CreateAccountInput is the event of the CreateAccount function.
type CreateAccountInput struct {
	Name       string `json:"name"`
	AdminEmail string `json:"adminEmail"`
	// Language of the first admin, "fr" or "en" (default "en").
	Language  string `json:"language,omitempty"`
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
}

// CreateAccountOutput is what CreateAccount returns.
type CreateAccountOutput struct {
	AccountID   string `json:"accountId"`
	AdminUserID string `json:"adminUserId"`
}

// MaxAccountNameLength bounds account names, in characters.
const MaxAccountNameLength = 200

// CreateAccount creates an account, an empty pool, and its first admin,
// and approves the admin's email domain for the account unless it is public
// webmail. It fails with EINVALID, EEMAILTAKEN and EDOMAINCLAIMED. The
// same name and admin email again answer the account created first, while
// that admin holds the email: a retry after a lost answer gets its ids.
func (s *Service) CreateAccount(ctx context.Context, in CreateAccountInput) (*CreateAccountOutput, error) {
	ctx = withInvocation(ctx)
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > MaxAccountNameLength {
		return nil, licadmin.Invalid("name", "required", "an account name of 1 to 200 characters is required")
	}
	email, domain, err := licadmin.ParseEmail("adminEmail", in.AdminEmail)
	if err != nil {
		return nil, err
	}
	lang := in.Language
	switch lang {
	case "":
		lang = "en"
	case "fr", "en":
	default:
		return nil, licadmin.Invalid("language", "unknown_language", "language must be fr or en")
	}
	if s.Webmail.Has(domain) {
		domain = ""
	}
	now := s.Now.Read()
	out := &CreateAccountOutput{AccountID: s.NewID(), AdminUserID: s.NewID()}
	admin := &licadmin.User{
		ID:        out.AdminUserID,
		AccountID: out.AccountID,
		Email:     email,
		FirstName: defaultTo(strings.TrimSpace(in.FirstName), "Admin"),
		LastName:  defaultTo(strings.TrimSpace(in.LastName), name),
		Language:  lang,
		Role:      licadmin.RoleAdmin,
		Status:    licadmin.StatusPending,
		Security:  licadmin.Security{ProtectedReplies: "none"},
		CreatedAt: now,
		UpdatedAt: now,
		Version:   1,
	}
	if out.AccountID, out.AdminUserID, err = s.Store.CreateAccount(ctx, out.AccountID, name, admin, domain, now); err != nil {
		return nil, err
	}
	return out, nil
}

// AddLicensesInput is the event of the AddLicenses function.
type AddLicensesInput struct {
	AccountID string `json:"accountId"`
	Tier      string `json:"tier"`
	Quantity  int64  `json:"quantity"`
	OrderID   string `json:"orderId"`
}

// MaxOrderQuantity bounds the licenses one order adds.
const MaxOrderQuantity = 1_000_000

// AddLicenses adds purchased licenses to a pool, once per order id, and
// returns the pool. It fails with EINVALID, ENOTFOUND (account) and
// EORDERCONFLICT (same order id, different content).
func (s *Service) AddLicenses(ctx context.Context, in AddLicensesInput) (*licadmin.Pool, error) {
	ctx = withInvocation(ctx)
	tier, err := licadmin.ParseTier("tier", in.Tier)
	if err != nil {
		return nil, err
	}
	switch {
	case in.AccountID == "":
		return nil, licadmin.Invalid("accountId", "required", "accountId is required")
	case in.Quantity < 1 || in.Quantity > MaxOrderQuantity:
		return nil, licadmin.Invalid("quantity", "out_of_range", "quantity must be from 1 to 1000000")
	case in.OrderID == "" || len(in.OrderID) > 200:
		return nil, licadmin.Invalid("orderId", "required", "an orderId of 1 to 200 characters is required")
	}
	return s.Store.AddLicenses(ctx, in.AccountID, tier, in.Quantity, in.OrderID, s.Now.Read())
}

// CreateAccountHandler is the CreateAccount Lambda handler.
func CreateAccountHandler(s *Service) func(context.Context, CreateAccountInput) (*CreateAccountOutput, error) {
	return s.CreateAccount
}

// AddLicensesHandler is the AddLicenses Lambda handler.
func AddLicensesHandler(s *Service) func(context.Context, AddLicensesInput) (*licadmin.Pool, error) {
	return s.AddLicenses
}

// withInvocation returns ctx carrying the Lambda invocation's request id as
// the request of the change, for its audit record (docs/api.md, rule 8), unless ctx
// already carries a request. Operators call with IAM: there is no source IP.
func withInvocation(ctx context.Context) context.Context {
	if licadmin.RequestFrom(ctx).RequestID != "" {
		return ctx
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return licadmin.WithRequest(ctx, licadmin.Request{RequestID: lc.AwsRequestID})
	}
	return ctx
}

func defaultTo(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
