package apigw

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/licadmin"
)

// ProblemContentType is the media type of every error body (RFC 9457).
const ProblemContentType = "application/problem+json"

// ProblemTypeBase prefixes each code to form the problem's "type" URI.
const ProblemTypeBase = "urn:license-admin:problem:"

// statuses is the one table that maps application error codes to HTTP
// statuses. A code missing here is a bug and answers 500.
var statuses = map[string]int{
	licadmin.EINVALID:              http.StatusBadRequest,
	licadmin.EUNAUTHORIZED:         http.StatusUnauthorized,
	licadmin.EFORBIDDEN:            http.StatusForbidden,
	licadmin.EEMAILUNVERIFIED:      http.StatusForbidden,
	licadmin.ENOTFOUND:             http.StatusNotFound,
	licadmin.EMETHODNOTALLOWED:     http.StatusMethodNotAllowed,
	licadmin.ELICENSEASSIGNED:      http.StatusConflict,
	licadmin.ENOLICENSE:            http.StatusConflict,
	licadmin.EUSERNOLICENSE:        http.StatusConflict,
	licadmin.ETARGETHASLICENSE:     http.StatusConflict,
	licadmin.ELICENSESINUSE:        http.StatusConflict,
	licadmin.EDOMAINCLAIMED:        http.StatusConflict,
	licadmin.EEMAILTAKEN:           http.StatusConflict,
	licadmin.EORDERCONFLICT:        http.StatusConflict,
	licadmin.ELASTADMIN:            http.StatusConflict,
	licadmin.EIDEMINPROGRESS:       http.StatusConflict,
	licadmin.ETOKENINVALID:         http.StatusGone,
	licadmin.EPRECONDITION:         http.StatusPreconditionFailed,
	licadmin.ETOOLARGE:             http.StatusRequestEntityTooLarge,
	licadmin.EUNSUPPORTEDMEDIATYPE: http.StatusUnsupportedMediaType,
	licadmin.EIDEMREUSED:           http.StatusUnprocessableEntity,
	licadmin.EDOMAINNOTAPPROVED:    http.StatusUnprocessableEntity,
	licadmin.EREQUIRESPRO:          http.StatusUnprocessableEntity,
	licadmin.EDOMAINUNVERIFIED:     http.StatusUnprocessableEntity,
	licadmin.EINVALIDDOMAIN:        http.StatusUnprocessableEntity,
	licadmin.ERATELIMITED:          http.StatusTooManyRequests,
	licadmin.EINTERNAL:             http.StatusInternalServerError,
	licadmin.EUNAVAILABLE:          http.StatusServiceUnavailable,
}

// StatusOf returns the HTTP status for an application error code.
func StatusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem details body with this API's extensions:
// a stable code, the offending fields of a validation error, and the
// request id to quote to support.
type Problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail"`
	Code      string                `json:"code"`
	Errors    []licadmin.FieldError `json:"errors,omitempty"`
	RequestID string                `json:"requestId,omitempty"`
}

// NewProblem describes err for a client. Internal errors carry a generic
// detail only; their cause goes to the log, never to the client.
func NewProblem(err error, requestID string) Problem {
	code := licadmin.ErrorCode(err)
	if _, known := statuses[code]; !known {
		code = licadmin.EINTERNAL
	}
	status := StatusOf(code)
	p := Problem{
		Type:      ProblemTypeBase + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    licadmin.ErrorMessage(err),
		Code:      code,
		RequestID: requestID,
	}
	var e *licadmin.Error
	if errors.As(err, &e) {
		p.Errors = e.Fields
	}
	return p
}

func (s *Server) problem(err error, requestID string) events.APIGatewayV2HTTPResponse {
	return ProblemResponse(err, requestID)
}

// ProblemResponse renders err as an API Gateway problem+json response.
func ProblemResponse(err error, requestID string) events.APIGatewayV2HTTPResponse {
	p := NewProblem(err, requestID)
	b, _ := json.Marshal(p)
	h := map[string]string{"Content-Type": ProblemContentType}
	if p.Status == http.StatusUnauthorized {
		h["WWW-Authenticate"] = "Bearer"
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: p.Status, Headers: h, Body: string(b)}
}
