// Package sqsqueue sends messages to an Amazon SQS queue (in AWS, or the
// local stack's queue when an endpoint is set).
package sqsqueue

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Queue sends to one queue.
type Queue struct {
	// SendMessage is a client's SendMessage method value, not the client:
	// in a function that renders emails, whose templates' reflection makes
	// the linker keep every exported method of every type stored in an
	// interface, a *sqs.Client here would keep all of SQS's operations.
	SendMessage func(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	URL         string
}

// New returns a Queue for the queue at url, with a client from cfg that
// talks to endpoint when it is not empty.
func New(cfg aws.Config, endpoint, url string) *Queue {
	return &Queue{SendMessage: NewClient(cfg, endpoint).SendMessage, URL: url}
}

// NewClient returns an SQS client from cfg that talks to endpoint when it
// is not empty.
func NewClient(cfg aws.Config, endpoint string) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// Send puts one message with body on the queue and returns once SQS has
// stored it.
func (q *Queue) Send(ctx context.Context, body []byte) error {
	_, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(string(body))})
	if err != nil {
		return fmt.Errorf("send to %s: %w", q.URL, err)
	}
	return nil
}
