package app

import (
	"context"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"

	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/logs"
	"licenseadmin/shared/sqsqueue"
	"licenseadmin/shared/stats"
	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
	"licenseadmin/shared/usage"
)

// QueueConfig locates the SQS queues.
type QueueConfig struct {
	// SQSEndpoint overrides the SQS endpoint (SQS_ENDPOINT), for the local
	// stack's queue; empty in AWS.
	SQSEndpoint string
	// ExportQueueURL is the queue of log export jobs (EXPORT_QUEUE_URL);
	// only the function that requests exports needs it.
	ExportQueueURL string
	// ReminderQueueURL is the queue of bulk reminder jobs
	// (REMINDER_QUEUE_URL): the functions that request and run them.
	ReminderQueueURL string
}

// S3Config locates the bucket of CSV files: imports under imports/, log
// exports under exports/.
type S3Config struct {
	// Endpoint overrides the S3 endpoint (S3_ENDPOINT), for the local
	// stack's S3-compatible store; empty in AWS. Set, it also selects
	// path-style addressing.
	Endpoint string
	// Bucket is the bucket's name (BUCKET_NAME).
	Bucket string
}

func (c *QueueConfig) readQueues(getenv func(string) string) error {
	c.SQSEndpoint = getenv("SQS_ENDPOINT")
	c.ExportQueueURL = getenv("EXPORT_QUEUE_URL")
	c.ReminderQueueURL = getenv("REMINDER_QUEUE_URL")
	for name, v := range map[string]string{"SQS_ENDPOINT": c.SQSEndpoint, "EXPORT_QUEUE_URL": c.ExportQueueURL, "REMINDER_QUEUE_URL": c.ReminderQueueURL} {
		if v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%s %q: want an http(s) URL", name, v)
			}
		}
	}
	return nil
}

func (c *S3Config) readS3(getenv func(string) string) error {
	c.Endpoint = getenv("S3_ENDPOINT")
	c.Bucket = getenv("BUCKET_NAME")
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("S3_ENDPOINT %q: want an http(s) URL", c.Endpoint)
		}
	}
	return nil
}

// wireUsage builds the usage ingestion, logs, exports and statistics
// services of a. Exports get their queue and bucket from useAWSExports
// (New, WithExports), or from the tests and the local stack.
func wireUsage(a *App, st *store.Store, now licadmin.Clock, newID licadmin.IDSource) {
	a.Usage = &usage.Ingester{Store: st, Now: now, Logger: a.Logger, Remember: usage.RememberUsers}
	a.UsageRecorder = &usage.Recorder{Store: st, Logger: a.Logger}
	a.Logs = &logs.Service{Store: st, Now: now}
	a.Exports = &logs.Exports{Store: st, Now: now, NewID: newID, Logger: a.Logger}
	a.Stats = &stats.Service{Store: st, Now: now}
	a.Purger = &logs.Purger{Store: st, Now: now, Logger: a.Logger}
}

// wirePurge registers the log purge on the table's stream: a user MODIFY
// whose logGen went up (license removed or transferred) and a user REMOVE
// (user deleted) purge what no read can reach any more.
func wirePurge(a *App) {
	a.Stream.
		On(store.KindUser, stream.Modify, a.purgeOnUserChange).
		On(store.KindUser, stream.Remove, a.purgeOnUserChange).
		On(store.KindPurge, stream.Insert, a.continuePurge).
		On(store.KindPurge, stream.Modify, a.continuePurge)
}

// useAWSExports gives exports the export queue (useExportQueue) and the
// bucket of Config.S3 through the import files' client. A setting that is
// missing leaves its part unset: the export operations then fail with an
// internal error naming it.
func useAWSExports(a *App, awsCfg aws.Config) {
	useExportQueue(a, awsCfg)
	if a.Config.S3.Bucket != "" && a.Files != nil {
		a.Exports.Objects = a.Files
	}
}

// useExportQueue gives exports the export queue (EXPORT_QUEUE_URL, through
// SQS_ENDPOINT's queue when set), and the log purge the export function,
// through that queue, to delete the export files of purged generations.
// Without the setting neither is set: exports fail naming it, and the
// purge leaves the files to their one-day lifecycle.
func useExportQueue(a *App, awsCfg aws.Config) {
	if url := a.Config.Queues.ExportQueueURL; url != "" {
		a.Exports.Queue = sqsqueue.New(awsCfg, a.Config.Queues.SQSEndpoint, url)
		a.Purger.Files = a.Exports
	}
}

// useAWSReminders gives bulk reminders their queue (REMINDER_QUEUE_URL,
// through SQS_ENDPOINT's queue when set); without it, a reminder of every
// pending user is recorded failed.
func useAWSReminders(a *App, awsCfg aws.Config) {
	if url := a.Config.Queues.ReminderQueueURL; url != "" {
		a.Reminders.Queue = sqsqueue.New(awsCfg, a.Config.Queues.SQSEndpoint, url)
	}
}

// purgeOnUserChange starts purging the log generations a user record left
// behind: a MODIFY whose logGen went up, or a REMOVE.
func (a *App) purgeOnUserChange(ctx context.Context, r stream.Record) error {
	old, cur := store.UserFromImage(r.OldImage), store.UserFromImage(r.NewImage)
	if old == nil {
		return nil
	}
	if r.EventName == stream.Remove {
		return a.Purger.UserChanged(ctx, old.AccountID, old.ID, old.LogGeneration, 0, true)
	}
	if cur == nil || cur.LogGeneration <= old.LogGeneration {
		return nil
	}
	return a.Purger.UserChanged(ctx, old.AccountID, old.ID, old.LogGeneration, cur.LogGeneration, false)
}

// continuePurge goes on with a purge that an earlier call left unfinished.
func (a *App) continuePurge(ctx context.Context, r stream.Record) error {
	if j := store.PurgeFromImage(r.NewImage); j != nil {
		return a.Purger.Run(ctx, j)
	}
	return nil
}
