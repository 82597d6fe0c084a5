// Package license holds the rules of an account's license pool: who may
// assign, modify, remove and transfer licenses, and which error each
// situation answers. It decides from one consistent read and leaves the
// enforcement of every invariant to the store's conditional transaction, so
// a decision made on a read that is no longer true fails and is re-planned.
package license

import (
	"context"
	"time"

	"licenseadmin/shared/licadmin"
)

// Store is what the license rules need from storage.
type Store interface {
	// LoadCaller reads the caller's claim and the named users in one round trip.
	LoadCaller(ctx context.Context, email string, userIDs ...string) (*licadmin.Caller, []*licadmin.User, error)
	Pool(ctx context.Context, accountID string) (*licadmin.Pool, error)
	AssignLicense(ctx context.Context, c *licadmin.Caller, u *licadmin.User, tier licadmin.Tier, now time.Time) (*licadmin.User, error)
	ModifyLicense(ctx context.Context, c *licadmin.Caller, u *licadmin.User, tier licadmin.Tier, now time.Time) (*licadmin.User, error)
	RemoveLicense(ctx context.Context, c *licadmin.Caller, u *licadmin.User, now time.Time) (*licadmin.User, error)
	TransferLicense(ctx context.Context, c *licadmin.Caller, from, to *licadmin.User, now time.Time) (*licadmin.User, error)
	DeleteFromPool(ctx context.Context, c *licadmin.Caller, pool *licadmin.Pool, tier licadmin.Tier, quantity int64, now time.Time) (*licadmin.Pool, error)
	SetAlertThreshold(ctx context.Context, c *licadmin.Caller, pool *licadmin.Pool, tier licadmin.Tier, threshold int64, now time.Time) (*licadmin.Pool, error)
	BulkLicenses(ctx context.Context, c *licadmin.Caller, action licadmin.BulkAction, tier licadmin.Tier, us []*licadmin.User, now time.Time) (*licadmin.Users, error)
}

// Service applies the license rules for portal callers.
type Service struct {
	Store Store
	Now   licadmin.Clock
}

// MaxDeleteQuantity bounds one "delete from pool" request.
const MaxDeleteQuantity = 1_000_000

// Pool returns the caller's account pool. Admins only.
func (s *Service) Pool(ctx context.Context, r licadmin.Request) (*licadmin.Pool, error) {
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, err
	}
	return s.Store.Pool(ctx, c.AccountID)
}

// withUsers loads the caller and users in one consistent read, checks the
// caller is an admin and the users are in its account, and runs op; it
// plans again when op finds that a user changed since the read.
//
// That read is the change's authority: the store's transaction holds the
// users and the pool to what it saw, and carries no check of the caller's
// claim (store, license.go), so the caller is read by every request,
// never remembered.
func (s *Service) withUsers(ctx context.Context, r licadmin.Request, ids []string, op func(c *licadmin.Caller, us []*licadmin.User) error) error {
	return licadmin.RetryStale(ctx, func() error {
		c, us, err := licadmin.AdminAndUsers(ctx, s.Store, r.Email, ids...)
		if err != nil {
			return err
		}
		return op(c, us)
	})
}

// Assign gives user userID a license of tier. It fails with ENOTFOUND,
// ELICENSEASSIGNED when the user already holds one (whatever its tier), and
// ENOLICENSE when the pool has none of that tier available.
func (s *Service) Assign(ctx context.Context, r licadmin.Request, userID string, tier licadmin.Tier) (*licadmin.User, error) {
	var out *licadmin.User
	err := s.withUsers(ctx, r, []string{userID}, func(c *licadmin.Caller, us []*licadmin.User) (err error) {
		if us[0].License != nil {
			return licadmin.Errorf(licadmin.ELICENSEASSIGNED, "the user already holds a license (%s); change its tier instead", us[0].License.Tier)
		}
		out, err = s.Store.AssignLicense(ctx, c, us[0], tier, s.Now.Read())
		return err
	})
	return out, err
}

// Modify changes the tier of the user's license, keeping its logs. The same
// tier is a no-op. It fails with EUSERNOLICENSE and ENOLICENSE. Leaving Pro
// turns off the settings that need Pro.
func (s *Service) Modify(ctx context.Context, r licadmin.Request, userID string, tier licadmin.Tier) (*licadmin.User, error) {
	var out *licadmin.User
	err := s.withUsers(ctx, r, []string{userID}, func(c *licadmin.Caller, us []*licadmin.User) (err error) {
		u := us[0]
		switch {
		case u.License == nil:
			return licadmin.Errorf(licadmin.EUSERNOLICENSE, "the user holds no license; assign one instead")
		case u.License.Tier == tier:
			out = u
			return nil
		}
		out, err = s.Store.ModifyLicense(ctx, c, u, tier, s.Now.Read())
		return err
	})
	return out, err
}

// Remove takes the user's license back into the pool; the user's logs
// become unreadable at once (docs/api.md, rule 6). It fails with EUSERNOLICENSE.
func (s *Service) Remove(ctx context.Context, r licadmin.Request, userID string) (*licadmin.User, error) {
	var out *licadmin.User
	err := s.withUsers(ctx, r, []string{userID}, func(c *licadmin.Caller, us []*licadmin.User) (err error) {
		if us[0].License == nil {
			return licadmin.Errorf(licadmin.EUSERNOLICENSE, "the user holds no license")
		}
		out, err = s.Store.RemoveLicense(ctx, c, us[0], s.Now.Read())
		return err
	})
	return out, err
}

// Transfer moves the license of userID to toUserID, keeping the tier, and
// returns the new holder. The former holder's logs become unreadable. It
// fails with ENOTFOUND (either user), EUSERNOLICENSE, and ETARGETHASLICENSE
// (also when both ids name the same user).
func (s *Service) Transfer(ctx context.Context, r licadmin.Request, userID, toUserID string) (*licadmin.User, error) {
	var out *licadmin.User
	err := s.withUsers(ctx, r, []string{userID, toUserID}, func(c *licadmin.Caller, us []*licadmin.User) (err error) {
		from, to := us[0], us[1]
		switch {
		case from.License == nil:
			return licadmin.Errorf(licadmin.EUSERNOLICENSE, "the user holds no license to transfer")
		case to.License != nil:
			return licadmin.Errorf(licadmin.ETARGETHASLICENSE, "the target user already holds a license (%s)", to.License.Tier)
		}
		out, err = s.Store.TransferLicense(ctx, c, from, to, s.Now.Read())
		return err
	})
	return out, err
}

// DeleteFromPool permanently removes quantity unassigned licenses of tier
// from the pool and returns the pool. It fails with ELICENSESINUSE when
// fewer than quantity are unassigned.
func (s *Service) DeleteFromPool(ctx context.Context, r licadmin.Request, tier licadmin.Tier, quantity int64) (*licadmin.Pool, error) {
	if quantity < 1 || quantity > MaxDeleteQuantity {
		return nil, licadmin.Invalid("quantity", "out_of_range", "quantity must be a whole number from 1 to 1000000")
	}
	var out *licadmin.Pool
	err := licadmin.RetryStale(ctx, func() error {
		c, err := licadmin.Admin(ctx, s.Store, r.Email)
		if err != nil {
			return err
		}
		pool, err := s.Store.Pool(ctx, c.AccountID)
		if err != nil {
			return err
		}
		if avail := pool.Tier(tier).Available; avail < quantity {
			return licadmin.Errorf(licadmin.ELICENSESINUSE, "only %d %s licenses are unassigned; remove licenses from users first", avail, tier)
		}
		out, err = s.Store.DeleteFromPool(ctx, c, pool, tier, quantity, s.Now.Read())
		return err
	})
	return out, err
}
