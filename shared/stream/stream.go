// Package stream dispatches the records of the table's DynamoDB stream to
// the code that reacts to each kind of item: a Dispatcher is the Lambda
// handler of the stream function, and each consumer registers the kinds
// (store.ItemKind) and events (INSERT, MODIFY, REMOVE) it handles with On.
// Records are handled in order; the first that fails is reported as the
// batch's failure (ReportBatchItemFailures), so that Lambda retries from
// it, and handlers must therefore be idempotent.
package stream

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/store"
)

// Stream event names.
const (
	Insert = "INSERT"
	Modify = "MODIFY"
	Remove = "REMOVE"
)

// Record is one stream record with its keys and images decoded as table
// items.
type Record struct {
	EventID        string
	EventName      string
	SequenceNumber string
	// Kind is store.ItemKind of the keys.
	Kind     string
	Keys     store.Item
	OldImage store.Item
	NewImage store.Item
}

// HandlerFunc reacts to one record. An error makes the record (and those
// after it in the batch) be delivered again.
type HandlerFunc func(ctx context.Context, r Record) error

type route struct {
	kind, event string
	handle      HandlerFunc
}

// Dispatcher routes records to handlers by item kind and event name.
// Records no handler wants are skipped.
type Dispatcher struct {
	Logger *slog.Logger
	routes []route
}

// New returns a Dispatcher that logs to logger.
func New(logger *slog.Logger) *Dispatcher { return &Dispatcher{Logger: logger} }

// On registers h for records of items of kind (store.Kind*) with event
// name event (Insert, Modify or Remove), and returns d. Several handlers
// of one kind and event run in registration order.
func (d *Dispatcher) On(kind, event string, h HandlerFunc) *Dispatcher {
	d.routes = append(d.routes, route{kind: kind, event: event, handle: h})
	return d
}

// Handle is the Lambda handler of the stream function.
func (d *Dispatcher) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	for i := range ev.Records {
		er := &ev.Records[i]
		if err := d.handle(ctx, er); err != nil {
			d.logger().ErrorContext(ctx, "stream record failed; it and the records after it will be retried",
				"eventId", er.EventID, "eventName", er.EventName, "sequenceNumber", er.Change.SequenceNumber, "err", err.Error())
			resp.BatchItemFailures = []events.DynamoDBBatchItemFailure{{ItemIdentifier: er.Change.SequenceNumber}}
			return resp, nil
		}
	}
	return resp, nil
}

func (d *Dispatcher) handle(ctx context.Context, er *events.DynamoDBEventRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	keys, err := Item(er.Change.Keys)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	kind := store.ItemKind(keys)
	var r *Record
	for _, rt := range d.routes {
		if rt.kind != kind || rt.event != er.EventName {
			continue
		}
		if r == nil {
			r = &Record{EventID: er.EventID, EventName: er.EventName, SequenceNumber: er.Change.SequenceNumber, Kind: kind, Keys: keys}
			if r.OldImage, err = Item(er.Change.OldImage); err != nil {
				return fmt.Errorf("old image: %w", err)
			}
			if r.NewImage, err = Item(er.Change.NewImage); err != nil {
				return fmt.Errorf("new image: %w", err)
			}
		}
		if err := rt.handle(ctx, *r); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) logger() *slog.Logger { return cmp.Or(d.Logger, slog.Default()) }
