package email

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ses"
	"github.com/aws/aws-sdk-go-v2/service/ses/types"
)

// SESAPI is the part of the SES client that SES uses.
type SESAPI interface {
	SendEmail(ctx context.Context, in *ses.SendEmailInput, optFns ...func(*ses.Options)) (*ses.SendEmailOutput, error)
}

// SendEmailFunc is an SESAPI made of a client's SendEmail method value
// (client.SendEmail). A function that renders emails executes templates,
// whose reflection makes the linker keep every exported method of every
// type stored in an interface: the *ses.Client itself in SES.Client would
// keep all of SES's operations, about 0.85 MB of binary; the method value
// keeps only SendEmail.
type SendEmailFunc func(ctx context.Context, in *ses.SendEmailInput, optFns ...func(*ses.Options)) (*ses.SendEmailOutput, error)

// SendEmail calls f.
func (f SendEmailFunc) SendEmail(ctx context.Context, in *ses.SendEmailInput, optFns ...func(*ses.Options)) (*ses.SendEmailOutput, error) {
	return f(ctx, in, optFns...)
}

// SES sends messages with Amazon SES's SendEmail (API v1), from one sender
// address, through a configuration set when one is named.
type SES struct {
	Client SESAPI
	// From is the sender address; SES must have its address or domain
	// verified.
	From string
	// ConfigurationSet is the SES configuration set to send through (its
	// event destinations record deliveries, bounces, complaints); "" for
	// none.
	ConfigurationSet string
}

// charset is the character set of every part.
const charset = "UTF-8"

// Send sends m once (no retry: the caller decides, see Classify) and
// returns SES's message id.
func (s *SES) Send(ctx context.Context, m Message) (string, error) {
	if s.From == "" {
		return "", errors.New("send email: no sender address is configured (SENDER_EMAIL)")
	}
	in := &ses.SendEmailInput{
		Source:      aws.String(s.From),
		Destination: &types.Destination{ToAddresses: []string{m.To}},
		Message: &types.Message{
			Subject: &types.Content{Data: aws.String(m.Subject), Charset: aws.String(charset)},
			Body: &types.Body{
				Text: &types.Content{Data: aws.String(m.Text), Charset: aws.String(charset)},
				Html: &types.Content{Data: aws.String(m.HTML), Charset: aws.String(charset)},
			},
		},
	}
	if s.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(s.ConfigurationSet)
	}
	names := slices.Sorted(maps.Keys(m.Tags))
	for _, k := range names {
		in.Tags = append(in.Tags, types.MessageTag{Name: aws.String(k), Value: aws.String(m.Tags[k])})
	}
	out, err := s.Client.SendEmail(ctx, in)
	if err != nil {
		return "", fmt.Errorf("send email: %w", err)
	}
	return aws.ToString(out.MessageId), nil
}
