package app

import (
	"context"
	"os"

	"licenseadmin/shared/email"
	"licenseadmin/shared/metrics"
	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
)

// wireMetrics gives the parts that report metrics the App's emitter, when
// Config.Metrics is on: every API request (count, errors, latency per
// operation), the store's transaction conflicts and retries, the CSV
// imports' rows and failures, the dropped files rejected, and the usage
// events ingested.
func wireMetrics(a *App) {
	if !a.Config.Metrics {
		return
	}
	m := metrics.New(os.Stdout)
	a.Metrics = m
	a.API.Metrics = m
	a.Store.Metrics = m
	a.Imports.Metrics = m
	a.Imports.DropMetrics = m
	a.Usage.Metrics = m
}

// meterPoolLevels reports each pool's levels per tier whenever the table
// stream shows the pool changed, when metrics are on.
func meterPoolLevels(a *App) {
	m := a.Metrics
	if m == nil || a.Stream == nil {
		return
	}
	levels := func(_ context.Context, r stream.Record) error {
		if acct, pool, ok := store.PoolFromImage(r.NewImage); ok {
			for _, tp := range pool.Tiers {
				m.LicensePool(acct, string(tp.Tier), tp.Assigned, tp.Available)
			}
		}
		return nil
	}
	a.Stream.On(store.KindPool, stream.Insert, levels).On(store.KindPool, stream.Modify, levels)
}

// meterEmail counts every SES send and failure per kind of email, once the
// App's real sender is in place (New).
func meterEmail(a *App) {
	if a.Metrics == nil || a.Notify == nil || a.Notify.Sender == nil {
		return
	}
	a.Notify.Sender = meteredSender{next: a.Notify.Sender, m: a.Metrics}
}

// meteredSender records each send of next.
type meteredSender struct {
	next email.Sender
	m    *metrics.Emitter
}

// Send implements email.Sender.
func (s meteredSender) Send(ctx context.Context, msg email.Message) (string, error) {
	id, err := s.next.Send(ctx, msg)
	s.m.Email(msg.Tags["kind"], err, err != nil && email.Classify(err) == email.Permanent)
	return id, err
}
