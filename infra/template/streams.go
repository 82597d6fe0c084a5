package template

import (
	"fmt"
	"maps"
	"slices"
)

// StreamSource is a DynamoDB event of a function: an event source mapping
// of the table's stream, read from the event's properties.
type StreamSource struct {
	// Function is the function's logical id.
	Function string
	// Table is the logical id of the table whose stream it reads (the
	// event's Stream: !GetAtt X.StreamArn).
	Table string
	// StartingPosition is TRIM_HORIZON or LATEST.
	StartingPosition string
	// BatchSize bounds the records of one invocation (100, Lambda's
	// default, when unset).
	BatchSize int
	// MaximumRetryAttempts is how often a failed batch is retried; -1
	// (Lambda's default) retries until the records expire.
	MaximumRetryAttempts int
	// BisectBatchOnFunctionError splits a failing batch in two.
	BisectBatchOnFunctionError bool
	// ReportBatchItemFailures tells whether the function answers
	// batchItemFailures (FunctionResponseTypes).
	ReportBatchItemFailures bool
	// OnFailure is the logical id of the queue that receives the batches
	// given up (DestinationConfig.OnFailure), "" for none.
	OnFailure string
	// Filters are the FilterCriteria's patterns, as JSON strings.
	Filters []string
}

type streamEvent struct {
	Stream                     any      `yaml:"Stream"`
	StartingPosition           string   `yaml:"StartingPosition"`
	BatchSize                  int      `yaml:"BatchSize"`
	MaximumRetryAttempts       *int     `yaml:"MaximumRetryAttempts"`
	BisectBatchOnFunctionError bool     `yaml:"BisectBatchOnFunctionError"`
	FunctionResponseTypes      []string `yaml:"FunctionResponseTypes"`
	DestinationConfig          struct {
		OnFailure struct {
			Type        string `yaml:"Type"`
			Destination any    `yaml:"Destination"`
		} `yaml:"OnFailure"`
	} `yaml:"DestinationConfig"`
	FilterCriteria struct {
		Filters []struct {
			Pattern string `yaml:"Pattern"`
		} `yaml:"Filters"`
	} `yaml:"FilterCriteria"`
}

// StreamSources returns the DynamoDB events of every function, sorted by
// function. It returns an error for an event whose Stream is not the
// stream of a table of the template, or whose on-failure destination is
// not a queue of the template, which the local stack could not serve.
func (t *Template) StreamSources() ([]StreamSource, error) {
	return sources(t, "DynamoDB", func(id, name string, e *streamEvent) (StreamSource, error) {
		src := StreamSource{Function: id, Table: getAttOf(e.Stream, "StreamArn"), StartingPosition: e.StartingPosition,
			BatchSize: e.BatchSize, MaximumRetryAttempts: -1, BisectBatchOnFunctionError: e.BisectBatchOnFunctionError}
		if r, ok := t.resources[src.Table]; !ok || r.Type != typeTable {
			return StreamSource{}, fmt.Errorf("template: function %s event %s: Stream must be !GetAtt <table>.StreamArn of a table of the template", id, name)
		}
		if src.BatchSize == 0 {
			src.BatchSize = 100
		}
		if e.MaximumRetryAttempts != nil {
			src.MaximumRetryAttempts = *e.MaximumRetryAttempts
		}
		for _, rt := range e.FunctionResponseTypes {
			src.ReportBatchItemFailures = src.ReportBatchItemFailures || rt == "ReportBatchItemFailures"
		}
		if d := e.DestinationConfig.OnFailure; d.Destination != nil {
			src.OnFailure = arnOf(d.Destination)
			if q, ok := t.resources[src.OnFailure]; !ok || q.Type != typeQueue || (d.Type != "" && d.Type != "SQS") {
				return StreamSource{}, fmt.Errorf("template: function %s event %s: the on-failure destination must be !GetAtt <queue>.Arn of a queue of the template", id, name)
			}
		}
		for _, f := range e.FilterCriteria.Filters {
			src.Filters = append(src.Filters, f.Pattern)
		}
		return src, nil
	})
}

// Queues returns the logical ids of the template's queues, sorted: the
// local stack serves them all, so that on-failure destinations and
// dead-letter queues can be read.
func (t *Template) Queues() []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(t.resources)) {
		if t.resources[id].Type == typeQueue {
			out = append(out, id)
		}
	}
	return out
}

// getAttOf returns X of {"Fn::GetAtt": [X, attr]}, or "".
func getAttOf(v any, attr string) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return ""
	}
	parts, ok := m["Fn::GetAtt"].([]any)
	if !ok || len(parts) != 2 || parts[1] != attr {
		return ""
	}
	s, _ := parts[0].(string)
	return s
}
