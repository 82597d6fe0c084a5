package user

import "licenseadmin/shared/licadmin"

// Validate checks a new user as Create does (the bulk import applies the
// same rules to each CSV row): it returns the normalised email and its
// domain, and every invalid field with its code ("invalid_email",
// "required", "invalid", "unknown_language", "unknown_role"), none when
// the user is valid.
func Validate(in NewUser) (email, domain string, fields []licadmin.FieldError) {
	return validate(in)
}
