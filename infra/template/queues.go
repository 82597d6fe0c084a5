package template

import (
	"fmt"
	"sort"
)

const typeQueue = "AWS::SQS::Queue"

// QueueSource is an SQS event of a function: the queue that invokes it and
// how, read from the function's event and the queue's own properties.
type QueueSource struct {
	// Function is the function's logical id.
	Function string
	// Queue is the queue's logical id (the event's Queue: !GetAtt X.Arn).
	Queue string
	// BatchSize is the event's BatchSize (10, SQS's default, when unset).
	BatchSize int
	// ReportBatchItemFailures tells whether the function answers
	// batchItemFailures (FunctionResponseTypes).
	ReportBatchItemFailures bool
	// DeadLetterQueue and MaxReceiveCount are the queue's RedrivePolicy:
	// after MaxReceiveCount receives a message moves to DeadLetterQueue (a
	// logical id). Both are zero when the queue has no redrive policy.
	DeadLetterQueue string
	MaxReceiveCount int
	// VisibilityTimeout is the queue's, in seconds (30, SQS's default,
	// when unset).
	VisibilityTimeout int
}

type sqsEvent struct {
	Queue                 any      `yaml:"Queue"`
	BatchSize             int      `yaml:"BatchSize"`
	FunctionResponseTypes []string `yaml:"FunctionResponseTypes"`
}

type queueProps struct {
	VisibilityTimeout int `yaml:"VisibilityTimeout"`
	RedrivePolicy     *struct {
		DeadLetterTargetArn any `yaml:"deadLetterTargetArn"`
		MaxReceiveCount     int `yaml:"maxReceiveCount"`
	} `yaml:"RedrivePolicy"`
}

// QueueSources returns the SQS events of every function, sorted by queue.
// It returns an error for an event whose Queue is not the ARN of a queue
// of the template (!GetAtt Queue.Arn), which the local stack could not
// serve.
func (t *Template) QueueSources() ([]QueueSource, error) {
	out, err := sources(t, "SQS", func(id, name string, e *sqsEvent) (QueueSource, error) {
		src := QueueSource{Function: id, Queue: arnOf(e.Queue), BatchSize: e.BatchSize, VisibilityTimeout: 30}
		if src.BatchSize == 0 {
			src.BatchSize = 10
		}
		for _, rt := range e.FunctionResponseTypes {
			src.ReportBatchItemFailures = src.ReportBatchItemFailures || rt == "ReportBatchItemFailures"
		}
		q, ok := t.resources[src.Queue]
		if !ok || q.Type != typeQueue {
			return QueueSource{}, fmt.Errorf("template: function %s event %s: Queue must be !GetAtt <queue>.Arn of a queue of the template", id, name)
		}
		var qp queueProps
		if err := decodeOptional(&q.Properties, &qp); err != nil {
			return QueueSource{}, fmt.Errorf("template: queue %s: %w", src.Queue, err)
		}
		if qp.VisibilityTimeout > 0 {
			src.VisibilityTimeout = qp.VisibilityTimeout
		}
		if qp.RedrivePolicy != nil {
			src.DeadLetterQueue, src.MaxReceiveCount = arnOf(qp.RedrivePolicy.DeadLetterTargetArn), qp.RedrivePolicy.MaxReceiveCount
			if dl, ok := t.resources[src.DeadLetterQueue]; !ok || dl.Type != typeQueue {
				return QueueSource{}, fmt.Errorf("template: queue %s: deadLetterTargetArn must be !GetAtt <queue>.Arn of a queue of the template", src.Queue)
			}
		}
		return src, nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out, nil
}

// arnOf returns X of {"Fn::GetAtt": [X, "Arn"]}, or "".
func arnOf(v any) string { return getAttOf(v, "Arn") }
