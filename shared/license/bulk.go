package license

import (
	"context"
	"fmt"
	"strconv"

	"licenseadmin/shared/licadmin"
)

// BulkChange is the input of Bulk: one action, its tier, and the users.
type BulkChange struct {
	Action *string  `json:"action"`
	Tier   *string  `json:"tier"`
	IDs    []string `json:"userIds"`
}

// Bulk applies one license action to many users of the caller's account,
// all or nothing, and returns them as committed, in the order named:
// "assign" gives each a license of tier (each gets the confirmation email
// a single assignment sends), "modify" changes each one's license to tier
// (users already at tier stay as they are), "remove" takes each one's
// license back (with tier, only licenses of that tier). Admins only.
//
// It fails with EINVALID for a malformed request: an unknown action, a
// missing tier, no users, more than licadmin.MaxBulkUsers, an empty or
// repeated id (field "userIds[i]", code "duplicate"). When users cannot
// take the action, nothing changes and it fails with the first such
// user's code (ENOTFOUND, ELICENSEASSIGNED, EUSERNOLICENSE), every such
// user listed in the error's fields as "userIds[i]" with its own code.
// When the pool lacks licenses for them all, ENOLICENSE says how many are
// needed and available.
func (s *Service) Bulk(ctx context.Context, r licadmin.Request, in BulkChange) (*licadmin.Users, error) {
	action, tier, err := validBulk(in)
	if err != nil {
		return nil, err
	}
	var out *licadmin.Users
	err = licadmin.RetryStale(ctx, func() error {
		c, us, err := s.Store.LoadCaller(ctx, r.Email, in.IDs...)
		if err != nil {
			return err
		}
		if err := licadmin.RequireAdmin(c); err != nil {
			return err
		}
		if err := canTake(c, action, tier, in.IDs, us); err != nil {
			return err
		}
		out, err = s.Store.BulkLicenses(ctx, c, action, tier, us, s.Now.Read())
		return err
	})
	return out, err
}

// validBulk checks the shape of a bulk change and returns its action and
// tier ("" for a remove of any tier).
func validBulk(in BulkChange) (licadmin.BulkAction, licadmin.Tier, error) {
	var fields []licadmin.FieldError
	action := licadmin.BulkAction("")
	switch {
	case in.Action == nil:
		fields = append(fields, licadmin.FieldError{Field: "action", Code: "required"})
	case *in.Action == string(licadmin.BulkAssign), *in.Action == string(licadmin.BulkModify), *in.Action == string(licadmin.BulkRemove):
		action = licadmin.BulkAction(*in.Action)
	default:
		fields = append(fields, licadmin.FieldError{Field: "action", Code: "unknown_action"})
	}
	var tier licadmin.Tier
	switch {
	case in.Tier != nil:
		t, err := licadmin.ParseTier("tier", *in.Tier)
		if err != nil {
			fields = append(fields, licadmin.FieldError{Field: "tier", Code: "unknown_tier"})
		}
		tier = t
	case action == licadmin.BulkAssign || action == licadmin.BulkModify:
		fields = append(fields, licadmin.FieldError{Field: "tier", Code: "required"})
	}
	switch {
	case len(in.IDs) == 0:
		fields = append(fields, licadmin.FieldError{Field: "userIds", Code: "required"})
	case len(in.IDs) > licadmin.MaxBulkUsers:
		fields = append(fields, licadmin.FieldError{Field: "userIds", Code: "too_many"})
	default:
		seen := map[string]bool{}
		for i, id := range in.IDs {
			f := "userIds[" + strconv.Itoa(i) + "]"
			switch {
			case id == "":
				fields = append(fields, licadmin.FieldError{Field: f, Code: "required"})
			case seen[id]:
				// One transaction may name an item once: a repeated id is
				// refused rather than guessed at.
				fields = append(fields, licadmin.FieldError{Field: f, Code: "duplicate"})
			}
			seen[id] = true
		}
	}
	if len(fields) > 0 {
		return "", "", &licadmin.Error{Code: licadmin.EINVALID, Message: fmt.Sprintf("the bulk change is invalid (at most %d distinct userIds); see errors", licadmin.MaxBulkUsers), Fields: fields}
	}
	return action, tier, nil
}

// canTake checks that every user (us[i], read for ids[i]) exists in c's
// account and can take the action, and lists each one that cannot.
func canTake(c *licadmin.Caller, action licadmin.BulkAction, tier licadmin.Tier, ids []string, us []*licadmin.User) error {
	var fields []licadmin.FieldError
	first := ""
	for i, id := range ids {
		code := ""
		u, err := licadmin.VisibleUser(c, us[i], id)
		switch {
		case err != nil:
			code = licadmin.ENOTFOUND
		case action == licadmin.BulkAssign && u.License != nil:
			code = licadmin.ELICENSEASSIGNED
		case action != licadmin.BulkAssign && u.License == nil:
			code = licadmin.EUSERNOLICENSE
		case action == licadmin.BulkRemove && tier != "" && u.License.Tier != tier:
			code = licadmin.EUSERNOLICENSE
		}
		if code == "" {
			continue
		}
		if first == "" {
			first = code
		}
		fields = append(fields, licadmin.FieldError{Field: "userIds[" + strconv.Itoa(i) + "]", Code: code})
	}
	if len(fields) == 0 {
		return nil
	}
	return &licadmin.Error{Code: first, Fields: fields,
		Message: fmt.Sprintf("%d of the %d users cannot take the %s; nothing changed; see errors", len(fields), len(ids), action)}
}
