package licadmin

import (
	"errors"
	"fmt"
)

// Error codes are the stable `code` values of problem+json bodies. Clients
// branch on them, so they never change once published; the HTTP status of
// each is decided in one table in package apigw.
const (
	ENOTFOUND             = "not_found"
	EINVALID              = "validation_failed"
	EUNAUTHORIZED         = "unauthorized"
	EFORBIDDEN            = "forbidden"
	EEMAILUNVERIFIED      = "email_unverified"
	ETOOLARGE             = "payload_too_large"
	EINTERNAL             = "internal"
	EUNAVAILABLE          = "service_unavailable"
	EIDEMREUSED           = "idempotency_key_reused"
	EIDEMINPROGRESS       = "idempotency_key_in_progress"
	ELICENSEASSIGNED      = "license_already_assigned"
	ENOLICENSE            = "no_license_available"
	EUSERNOLICENSE        = "user_has_no_license"
	ETARGETHASLICENSE     = "target_has_license"
	ELICENSESINUSE        = "licenses_in_use"
	EDOMAINNOTAPPROVED    = "domain_not_approved"
	EDOMAINCLAIMED        = "domain_claimed"
	EEMAILTAKEN           = "email_taken"
	EORDERCONFLICT        = "order_conflict"
	EPRECONDITION         = "precondition_failed"
	ELASTADMIN            = "last_admin"
	ERATELIMITED          = "rate_limited"
	ETOKENINVALID         = "token_invalid"
	EREQUIRESPRO          = "requires_pro"
	EDOMAINUNVERIFIED     = "domain_unverified"
	EINVALIDDOMAIN        = "invalid_domain"
	EMETHODNOTALLOWED     = "method_not_allowed"
	EUNSUPPORTEDMEDIATYPE = "unsupported_media_type"
)

// Error is an application error: a stable code, a message safe to show to
// the client, and for validation failures the offending fields. Anything
// that is not an *Error is an internal error and is never shown as is.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
}

// FieldError names one invalid input field and why, in problem+json
// "errors" entries.
type FieldError struct {
	Field string `json:"field"`
	Code  string `json:"code"`
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("licadmin error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with code and a formatted client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a validation error (EINVALID) for one field.
func Invalid(field, code, message string) *Error {
	return &Error{Code: EINVALID, Message: message, Fields: []FieldError{{Field: field, Code: code}}}
}

// ErrorCode returns the code of an application error, EINTERNAL for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of an application error, or a
// generic one that leaks nothing for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred; retry later, and report the request id if it persists."
}
