package operator

import (
	"context"

	"licenseadmin/shared/licadmin"
)

// ApproveDomainInput is the event of the ApproveDomain function.
type ApproveDomainInput struct {
	AccountID string `json:"accountId"`
	Domain    string `json:"domain"`
}

// ApproveDomain approves a domain for an account without DNS proof, as
// support does on other proof (and the local stack does for development):
// the same global claim as a DNS verification, so that a domain still
// belongs to one account at most. A pending request of the account is
// approved with its TXT record value kept. It returns the account's domain
// entry and fails with EINVALID, EINVALIDDOMAIN (not a domain name),
// ENOTFOUND (account) and EDOMAINCLAIMED (public webmail, or approved for
// another account).
func (s *Service) ApproveDomain(ctx context.Context, in ApproveDomainInput) (*licadmin.Domain, error) {
	ctx = withInvocation(ctx)
	if in.AccountID == "" {
		return nil, licadmin.Invalid("accountId", "required", "accountId is required")
	}
	name, err := licadmin.ParseDomain(in.Domain)
	if err != nil {
		return nil, err
	}
	if s.Webmail.Has(name) {
		return nil, licadmin.Errorf(licadmin.EDOMAINCLAIMED, "%s is a public webmail domain, which no account can claim", name)
	}
	d, _, err := s.Store.Domain(ctx, in.AccountID, name)
	if err != nil {
		return nil, err
	}
	return s.Store.ApproveDomain(ctx, nil, in.AccountID, name, d, s.Now.Read())
}

// ApproveDomainHandler is the ApproveDomain Lambda handler.
func ApproveDomainHandler(s *Service) func(context.Context, ApproveDomainInput) (*licadmin.Domain, error) {
	return s.ApproveDomain
}
