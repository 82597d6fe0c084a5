package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/oklog/ulid/v2"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/stack"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/sqsqueue"
	usageevents "licenseadmin/shared/usage"
)

// usageCmd puts one usage event on the local stack's usage queue, as the
// messaging service does in AWS; the local queue delivers it to the ingest
// function. The event's account is the user's, read from the local table,
// unless --account names another (to see such an event dropped).
func usageCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "usage")
	email := fs.String("email", "", "the user's email")
	typ := fs.String("type", "", "sent, opened, downloaded or signed")
	ip := fs.String("ip", "203.0.113.10", "the source IP address of the event")
	account := fs.String("account", "", "the event's account id (default: the user's)")
	ref := fs.String("message", "", "the message reference (default: a new one)")
	to := fs.String("to", "", "the recipients, comma separated")
	size := fs.Int64("bytes", 0, "the message's size in bytes (default 48213 for sent)")
	at := fs.String("at", "", "the event's time, RFC 3339 (default: now)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := cli.RequireFlags(fs, "email", "type"); err != nil {
		return err
	}
	if _, err := licadmin.ParseEventType("type", *typ); err != nil {
		return cli.UsageError{Msg: "--type must be sent, opened, downloaded or signed"}
	}
	msg := usageevents.Message{
		EventID: ulid.Make().String(), AccountID: *account, Email: licadmin.NormalizeEmail(*email), Type: *typ,
		At: time.Now().UTC().Format(time.RFC3339Nano), MessageRef: *ref, Recipients: []string{}, Bytes: *size, IP: *ip,
	}
	if *at != "" {
		msg.At = *at
	}
	if msg.MessageRef == "" {
		msg.MessageRef = "msg-" + strings.ToLower(ulid.Make().String()[16:])
	}
	for _, r := range strings.Split(*to, ",") {
		if r = strings.TrimSpace(r); r != "" {
			msg.Recipients = append(msg.Recipients, r)
		}
	}
	if msg.Bytes == 0 && *typ == string(licadmin.EventSent) {
		msg.Bytes = 48213
	}
	ctx, cancel, a, err := stack.LocalApp(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	cfg := a.Config
	if msg.AccountID == "" {
		u, err := a.Store.FindUser(ctx, "", msg.Email)
		if err != nil {
			return stack.Explain(err, cfg)
		}
		if u == nil {
			return fmt.Errorf("no user has the email %s in the local table: add it first (or pass --account to send the event anyway)", msg.Email)
		}
		msg.AccountID = u.AccountID
	}
	// The ingest function drops a malformed event with a log line; say
	// what is wrong here instead of sending it.
	if _, err := usageevents.Parse(mustJSON(msg), time.Now()); err != nil {
		return cli.UsageError{Msg: err.Error()}
	}

	endpoint := e.Getenv("SQS_ENDPOINT")
	if endpoint == "" {
		endpoint = fmt.Sprintf("http://127.0.0.1:%d", stack.DefaultSQSPort)
	}
	queueURL := e.Getenv("USAGE_QUEUE_URL")
	if queueURL == "" {
		queueURL = strings.TrimSuffix(endpoint, "/") + "/" + stack.LocalAccountID + "/UsageQueue"
	}
	// The local queue accepts any credentials; these are not secrets.
	client := sqsqueue.NewClient(aws.Config{Region: cfg.Region, Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}, endpoint)
	out, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(string(mustJSON(msg)))})
	if err != nil {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || errors.As(err, &ne) {
			return fmt.Errorf("cannot reach the local queue at %s: start the local stack with `make run` first (or set SQS_ENDPOINT): %w", endpoint, err)
		}
		return fmt.Errorf("send the event to %s: %w", queueURL, err)
	}
	return json.NewEncoder(e.Stdout).Encode(map[string]any{
		"messageId": aws.ToString(out.MessageId), "queueUrl": queueURL, "event": msg,
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
