package license

import (
	"context"

	"licenseadmin/shared/licadmin"
)

// MaxAlertThreshold bounds a tier's low-pool alert threshold.
const MaxAlertThreshold = 1_000_000

// SetAlertThreshold sets the tier's low-pool alert threshold: the account's
// admins get one email when the tier's available licenses fall to it. It
// returns the pool. Setting the current value changes nothing. It fails
// with EINVALID for a threshold out of 0..MaxAlertThreshold.
func (s *Service) SetAlertThreshold(ctx context.Context, r licadmin.Request, tier licadmin.Tier, threshold int64) (*licadmin.Pool, error) {
	if threshold < 0 || threshold > MaxAlertThreshold {
		return nil, licadmin.Invalid("alertThreshold", "out_of_range", "alertThreshold must be a whole number from 0 to 1000000")
	}
	c, err := licadmin.Admin(ctx, s.Store, r.Email)
	if err != nil {
		return nil, err
	}
	pool, err := s.Store.Pool(ctx, c.AccountID)
	if err != nil {
		return nil, err
	}
	if pool.Tier(tier).AlertThreshold == threshold {
		return pool, nil
	}
	return s.Store.SetAlertThreshold(ctx, c, pool, tier, threshold, s.Now.Read())
}
