package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ses"

	"licenseadmin/shared/activation"
	"licenseadmin/shared/email"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/notify"
	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
)

// EmailConfig is the configuration of activation links and emails.
type EmailConfig struct {
	// PublicBaseURL is the API's public URL (PUBLIC_BASE_URL), from which
	// activation links are built, never from a request's Host.
	PublicBaseURL string
	// SenderEmail is the From address of every email (SENDER_EMAIL); SES
	// must have it, or its domain, verified.
	SenderEmail string
	// SESConfigurationSet is the SES configuration set emails are sent
	// through (SES_CONFIGURATION_SET); empty for none.
	SESConfigurationSet string
	// SESEndpoint overrides the SES endpoint (SES_ENDPOINT), for the local
	// SES emulator; empty in AWS.
	SESEndpoint string
	// ActivationTTL is how long an activation link works (ACTIVATION_TTL,
	// a Go duration such as 168h; default 7 days).
	ActivationTTL time.Duration
}

// configSetName is what SES accepts as a configuration set name.
var configSetName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// readEmail reads the email settings; every one is optional here, and the
// code that needs one says so when it is missing.
func (c *EmailConfig) readEmail(getenv func(string) string) error {
	c.PublicBaseURL = getenv("PUBLIC_BASE_URL")
	c.SenderEmail = getenv("SENDER_EMAIL")
	c.SESConfigurationSet = getenv("SES_CONFIGURATION_SET")
	c.SESEndpoint = getenv("SES_ENDPOINT")
	c.ActivationTTL = activation.DefaultTTL
	if c.PublicBaseURL != "" {
		u, err := activation.ValidBaseURL(c.PublicBaseURL)
		if err != nil {
			return err
		}
		c.PublicBaseURL = u
	}
	if c.SenderEmail != "" {
		if a, err := mail.ParseAddress(c.SenderEmail); err != nil || a.Name != "" {
			return fmt.Errorf("SENDER_EMAIL %q: want a bare address such as no-reply@example.com", c.SenderEmail)
		}
	}
	if c.SESConfigurationSet != "" && !configSetName.MatchString(c.SESConfigurationSet) {
		return fmt.Errorf("SES_CONFIGURATION_SET %q: want letters, digits, _ and - only", c.SESConfigurationSet)
	}
	if v := getenv("ACTIVATION_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Hour || d > 30*24*time.Hour {
			return fmt.Errorf("ACTIVATION_TTL %q: use a duration from 1h to 720h, such as 168h", v)
		}
		c.ActivationTTL = d
	}
	return nil
}

// newSESClient returns the SendEmail of an SES client for cfg (only that
// method: email.SendEmailFunc says why). It does not retry: the outbox
// delivery retries throttling itself, with its own backoff, and records
// what happened.
func newSESClient(awsCfg aws.Config, cfg EmailConfig) email.SESAPI {
	return email.SendEmailFunc(ses.NewFromConfig(awsCfg, func(o *ses.Options) {
		if cfg.SESEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.SESEndpoint)
		}
		o.Retryer = aws.NopRetryer{}
	}).SendEmail)
}

// wireEmail builds the activation service of a (links and tokens).
func wireEmail(a *App, st *store.Store, now licadmin.Clock) {
	a.Activation = &activation.Service{Store: st, Now: now, TTL: a.Config.Email.ActivationTTL, PublicBaseURL: a.Config.Email.PublicBaseURL, Logger: a.Logger}
	a.Reminders = &activation.Reminders{Store: st, Now: now, NewID: a.newID, Logger: a.Logger}
}

// wireDelivery builds the outbox delivery and the stream dispatcher of a,
// with the email handlers. Its email sender refuses to send until UseSES
// gives it a client (New and WithStream do). Only the stream function
// delivers, so only it links the renderer, the SES client and the stream
// handlers (WithStream).
func wireDelivery(a *App) {
	st, now := a.Store, a.now
	a.Notify = &notify.Service{
		Store:    st,
		Sender:   noSender{},
		Renderer: email.MustRenderer(),
		Links:    a.Activation,
		Logger:   a.Logger,
		Now:      now,
	}
	a.Stream = stream.New(a.Logger).
		On(store.KindOutbox, stream.Insert, func(ctx context.Context, r stream.Record) error {
			o := store.OutboxFromImage(r.NewImage)
			if o == nil {
				return nil
			}
			// Deferred: the sweeper has it; the shard moves on.
			if err := a.Notify.Deliver(ctx, o); !errors.Is(err, notify.ErrDeferred) {
				return err
			}
			return nil
		}).
		On(store.KindAudit, stream.Insert, func(ctx context.Context, r stream.Record) error {
			return a.Notify.LicensesImported(ctx, store.AuditFromImage(r.NewImage))
		}).
		On(store.KindUser, stream.Modify, func(ctx context.Context, r stream.Record) error {
			return a.Notify.LicenseGained(ctx, r.EventID, store.UserFromImage(r.OldImage), store.UserFromImage(r.NewImage))
		}).
		On(store.KindPool, stream.Modify, func(ctx context.Context, r stream.Record) error {
			acct, before, ok := store.PoolFromImage(r.OldImage)
			_, after, ok2 := store.PoolFromImage(r.NewImage)
			if !ok || !ok2 {
				return nil
			}
			return a.Notify.PoolChanged(ctx, r.EventID, acct, before, after)
		})
}

// UseSES makes a's emails go through client, from the configured sender
// and configuration set.
func (a *App) UseSES(client email.SESAPI) {
	a.Notify.Sender = &email.SES{Client: client, From: a.Config.Email.SenderEmail, ConfigurationSet: a.Config.Email.SESConfigurationSet}
}

// SetLogger makes a's request and email logs go to logger.
func (a *App) SetLogger(logger *slog.Logger) {
	a.Logger = logger
	a.API.Logger = logger
	if a.Notify != nil {
		a.Notify.Logger = logger
	}
	if a.Stream != nil {
		a.Stream.Logger = logger
	}
	a.Usage.Logger = logger
	a.Exports.Logger = logger
	a.Purger.Logger = logger
	a.Activation.Logger = logger
}

// noSender refuses to send: an App built without an SES client.
type noSender struct{}

func (noSender) Send(context.Context, email.Message) (string, error) {
	return "", fmt.Errorf("send email: no SES client is configured")
}
