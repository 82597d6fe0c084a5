package apitest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ses"

	"licenseadmin/infra/seslocal"
	"licenseadmin/infra/streamlocal"
)

// The email settings of a test App.
const (
	PublicBaseURL = "https://admin.license-admin.test"
	SenderEmail   = "no-reply@license-admin.test"
)

// StreamFunction is the template function that handles the table's
// stream: a test that calls e.App.Stream.Handle itself passes
// AsFunction(ctx, StreamFunction).
const StreamFunction = "ProcessTableStreamFunction"

// Mail is the email side of an Env: the test binary's SES emulator, which
// the App sends to, and the table's stream, which tests drain through the
// App's stream handler as Lambda would deliver it.
type Mail struct {
	SES    *seslocal.Server
	Stream *streamlocal.Poller
	env    *Env
}

// WithEmail sends env's email to the SES emulator (started once per test
// binary) through a client that optFns adjust (fault injection), with the
// test sender and public base URL, and returns its Mail. The stream is
// read from its start.
func (e *Env) WithEmail(tb testing.TB, optFns ...func(*ses.Options)) *Mail {
	tb.Helper()
	srv := seslocal.Shared(tb)
	client := ses.New(ses.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		Retryer:      aws.NopRetryer{},
	}, append(optFns, e.iam.ses)...)
	e.App.Config.Email.SenderEmail = SenderEmail
	e.App.Config.Email.PublicBaseURL = PublicBaseURL
	e.App.Activation.PublicBaseURL = PublicBaseURL
	e.App.UseSES(client)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	e.App.Notify.Logger = quiet
	e.App.Stream.Logger = quiet
	return &Mail{
		SES: srv,
		Stream: &streamlocal.Poller{
			DynamoDB: e.DB, Streams: streamlocal.NewStreamsClient(e.DB), Table: e.Table,
			Handler: func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
				return e.App.Stream.Handle(AsFunction(ctx, StreamFunction), ev)
			},
			Logger:  quiet,
			Retries: 1, Backoff: 10 * time.Millisecond,
		},
		env: e,
	}
}

// Drain delivers every stream record written so far to the App's stream
// handler, and what those deliveries wrote, until the stream is quiet.
func (m *Mail) Drain(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stream.Drain(ctx); err != nil {
		tb.Fatalf("drain the table's stream: %v", err)
	}
}

// Next returns the stream records written since the last Next or Drain,
// without handing them to the App.
func (m *Mail) Next(tb testing.TB) []events.DynamoDBEventRecord {
	tb.Helper()
	recs, err := m.Stream.Next(context.Background())
	if err != nil {
		tb.Fatalf("read the table's stream: %v", err)
	}
	return recs
}

// To returns the mail the emulator stored for address.
func (m *Mail) To(tb testing.TB, address string) []seslocal.Email {
	tb.Helper()
	mail, err := m.SES.EmailsTo(context.Background(), address)
	if err != nil {
		tb.Fatal(err)
	}
	return mail
}
