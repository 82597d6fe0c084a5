// Package email renders License Admin's emails and sends them. Messages
// are rendered in Go from the template files embedded from templates/
// (French and English, an HTML and a text part each; every value is
// escaped in the HTML part, without the reflection of html/template, which
// would keep every method of the AWS clients in the binary), and sent
// through one small interface, Sender, whose implementation over Amazon SES
// is SES. Classify tells a failure worth retrying (throttling, an outage)
// from one that never will succeed, so that the caller can retry the first
// and record the second.
package email

import (
	"context"
	"errors"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Message is one rendered email to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
	// Tags are SES message tags (names and values of letters, digits, _
	// and -), such as the kind of email, for the configuration set's event
	// destinations.
	Tags map[string]string
}

// Sender sends one message and returns the id the mail service gave it.
type Sender interface {
	Send(ctx context.Context, m Message) (messageID string, err error)
}

// Class is how a send failure should be handled.
type Class int

// The classes Classify returns.
const (
	// Retryable failures may succeed later: throttling (SES's sending rate
	// or daily quota), a server error, a network failure or a time-out.
	Retryable Class = iota
	// Throttled is the retryable failure of a sending rate exceeded.
	Throttled
	// Permanent failures will fail again: the mail service refused the
	// message (an unverified address, a rejected message, a bad parameter,
	// an unknown configuration set).
	Permanent
)

// throttlingCodes are the error codes SES uses when it throttles.
var throttlingCodes = map[string]bool{
	"Throttling":               true,
	"ThrottlingException":      true,
	"TooManyRequestsException": true,
}

// Classify tells how to handle err, an error of Sender.Send.
func Classify(err error) Class {
	var apiErr smithy.APIError
	var respErr *awshttp.ResponseError
	var netErr net.Error
	switch {
	case err == nil:
		return Retryable
	case errors.As(err, &apiErr) && throttlingCodes[apiErr.ErrorCode()]:
		return Throttled
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() == 429:
		return Throttled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &netErr):
		return Retryable
	case errors.As(err, &apiErr) && apiErr.ErrorFault() == smithy.FaultClient:
		return Permanent
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 400 && respErr.HTTPStatusCode() < 500:
		return Permanent
	case errors.As(err, &apiErr) && strings.HasPrefix(apiErr.ErrorCode(), "InvalidParameter"):
		return Permanent
	}
	return Retryable
}
