package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/store"
	"licenseadmin/shared/stream"
)

// sample is the stream function's sample event: an outbox INSERT and a
// pool MODIFY, as Lambda delivers them.
func sample(t *testing.T) events.DynamoDBEvent {
	t.Helper()
	b, err := os.ReadFile("../../infra/events/process-table-stream.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestDispatchByKindAndEvent ensures each record reaches the handlers of
// its item kind and event name only, with its images decoded as items.
func TestDispatchByKindAndEvent(t *testing.T) {
	var got []string
	d := stream.New(nil).
		On(store.KindOutbox, stream.Insert, func(_ context.Context, r stream.Record) error {
			o := store.OutboxFromImage(r.NewImage)
			if o == nil || o.Email != "grace.hopper@acme.test" || o.Tier != "pro" || r.OldImage != nil {
				t.Errorf("outbox record decoded as %+v", o)
			}
			got = append(got, "outbox")
			return nil
		}).
		On(store.KindPool, stream.Modify, func(_ context.Context, r stream.Record) error {
			acct, before, ok := store.PoolFromImage(r.OldImage)
			_, after, ok2 := store.PoolFromImage(r.NewImage)
			if !ok || !ok2 || acct != "01JDQ3Z2Y4X6W8V0T2S4R6Q8PN" || before.Tier("eco").Available != 2 || after.Tier("eco").Available != 1 || after.Tier("eco").AlertThreshold != 1 {
				t.Errorf("pool record decoded as %s %+v %+v", acct, before, after)
			}
			got = append(got, "pool")
			return nil
		}).
		On(store.KindPool, stream.Insert, func(context.Context, stream.Record) error {
			got = append(got, "pool insert")
			return nil
		})
	resp, err := d.Handle(context.Background(), sample(t))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%+v %v", resp, err)
	}
	if len(got) != 2 || got[0] != "outbox" || got[1] != "pool" {
		t.Fatalf("handled %v, want outbox then pool", got)
	}
}

// TestDispatchReportsFirstFailure ensures a failing or panicking handler
// reports its record's sequence number and stops the batch there, so that
// Lambda retries from it.
func TestDispatchReportsFirstFailure(t *testing.T) {
	ev := sample(t)
	for name, h := range map[string]stream.HandlerFunc{
		"error": func(context.Context, stream.Record) error { return errors.New("boom") },
		"panic": func(context.Context, stream.Record) error { panic("boom") },
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			d := stream.New(nil).
				On(store.KindOutbox, stream.Insert, func(context.Context, stream.Record) error { calls++; return h(context.Background(), stream.Record{}) }).
				On(store.KindPool, stream.Modify, func(context.Context, stream.Record) error { calls++; return nil })
			resp, err := d.Handle(context.Background(), ev)
			if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Change.SequenceNumber {
				t.Fatalf("%+v %v, want the first record reported", resp, err)
			}
			if calls != 1 {
				t.Fatalf("%d handler calls, want the batch to stop at the failure", calls)
			}
		})
	}
}

// TestItemConversion ensures every attribute type of a stream image comes
// back as the table item's type.
func TestItemConversion(t *testing.T) {
	img := map[string]events.DynamoDBAttributeValue{
		"s": events.NewStringAttribute("x"), "n": events.NewNumberAttribute("12"), "b": events.NewBinaryAttribute([]byte{1, 2}),
		"bool": events.NewBooleanAttribute(true), "null": events.NewNullAttribute(),
		"ss": events.NewStringSetAttribute([]string{"a"}), "ns": events.NewNumberSetAttribute([]string{"1"}), "bs": events.NewBinarySetAttribute([][]byte{{3}}),
		"l": events.NewListAttribute([]events.DynamoDBAttributeValue{events.NewStringAttribute("y")}),
		"m": events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"k": events.NewNumberAttribute("3")}),
	}
	it, err := stream.Item(img)
	if err != nil {
		t.Fatal(err)
	}
	if v := it["s"].(*types.AttributeValueMemberS).Value; v != "x" {
		t.Error("s", v)
	}
	if v := it["n"].(*types.AttributeValueMemberN).Value; v != "12" {
		t.Error("n", v)
	}
	if v := it["b"].(*types.AttributeValueMemberB).Value; len(v) != 2 {
		t.Error("b", v)
	}
	if !it["bool"].(*types.AttributeValueMemberBOOL).Value || !it["null"].(*types.AttributeValueMemberNULL).Value {
		t.Error("bool/null")
	}
	if it["ss"].(*types.AttributeValueMemberSS).Value[0] != "a" || it["ns"].(*types.AttributeValueMemberNS).Value[0] != "1" || it["bs"].(*types.AttributeValueMemberBS).Value[0][0] != 3 {
		t.Error("sets")
	}
	if it["l"].(*types.AttributeValueMemberL).Value[0].(*types.AttributeValueMemberS).Value != "y" {
		t.Error("list")
	}
	if it["m"].(*types.AttributeValueMemberM).Value["k"].(*types.AttributeValueMemberN).Value != "3" {
		t.Error("map")
	}
	if empty, err := stream.Item(nil); empty != nil || err != nil {
		t.Errorf("nil image: %v %v", empty, err)
	}
}
