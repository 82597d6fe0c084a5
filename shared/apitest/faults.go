package apitest

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Fault decides, for one DynamoDB call, which failure to inject. DynamoDB
// Local never raises TransactionConflict nor throttles, so tests inject them.
type Fault int

// The faults a FaultFunc can choose.
const (
	// NoFault lets the call through.
	NoFault Fault = iota
	// Conflict cancels a TransactWriteItems as a conflicting concurrent
	// transaction would, before it reaches DynamoDB.
	Conflict
	// Throttle answers ThrottlingException before the call reaches DynamoDB.
	Throttle
	// LostResponse lets the call reach DynamoDB and commit, then loses the
	// answer and reports a retryable error: the retry must change nothing.
	LostResponse
	// Fail answers a non-retryable internal error before the call is sent.
	Fail
)

// FaultFunc chooses the fault for the n-th call (from 1) of operation op.
type FaultFunc func(op string, n int) Fault

// Faults returns a DynamoDB client option that injects the faults chosen
// by f, and a counter of calls per operation name (faulty ones included).
func Faults(f FaultFunc) (func(*dynamodb.Options), *Counter) {
	c := &Counter{calls: map[string]int{}}
	mw := middleware.FinalizeMiddlewareFunc("injectFaults", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		op := middleware.GetOperationName(ctx)
		n := c.add(op)
		fault := NoFault
		if f != nil {
			fault = f(op, n)
		}
		switch fault {
		case Conflict:
			if op == "TransactWriteItems" {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, conflictError()
			}
		case Throttle:
			return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "injected throttling"}
		case Fail:
			return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "InternalServerError", Message: "injected failure: secret-table-detail", Fault: smithy.FaultServer}
		case LostResponse:
			out, md, err := next.HandleFinalize(ctx, in)
			if err == nil {
				c.add("lost:" + op)
				return out, md, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "injected lost response"}
			}
			return out, md, err
		}
		return next.HandleFinalize(ctx, in)
	})
	return func(o *dynamodb.Options) {
		// Injected throttling is retried at once: tests need the retry, not the wait.
		// and often enough that injected faults never exhaust the attempts.
		o.Retryer = retry.AddWithMaxAttempts(retry.AddWithMaxBackoffDelay(o.Retryer, 10*time.Millisecond), 10)
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Finalize.Add(mw, middleware.After)
		})
	}, c
}

// ConflictEvery is the fault policy that cancels every k-th
// TransactWriteItems with a conflict and lets every other call through.
func ConflictEvery(k int) FaultFunc {
	return func(op string, n int) Fault {
		if op == "TransactWriteItems" && n%k == 0 {
			return Conflict
		}
		return NoFault
	}
}

// LoseFirst is the fault policy that commits the first call of op and
// loses its answer, as a connection cut after DynamoDB committed would, and
// lets every other call through: the SDK's retry, or a redelivery, must
// then find the write applied and apply nothing twice.
func LoseFirst(op string) FaultFunc {
	return func(o string, n int) Fault {
		if o == op && n == 1 {
			return LostResponse
		}
		return NoFault
	}
}

// LoseNextTransaction returns a DynamoDB client option that, once arm is
// called, lets the next TransactWriteItems commit and loses its answer
// (once), and the counter of calls. A test builds its fixture first, arms,
// then checks that the retried change is applied once.
func LoseNextTransaction() (opt func(*dynamodb.Options), calls *Counter, arm func()) {
	var mu sync.Mutex
	lost := false
	opt, calls = Faults(func(op string, n int) Fault {
		mu.Lock()
		defer mu.Unlock()
		if op == "TransactWriteItems" && lost {
			lost = false
			return LostResponse
		}
		return NoFault
	})
	return opt, calls, func() {
		mu.Lock()
		lost = true
		mu.Unlock()
	}
}

// BeforeNextTransaction returns a DynamoDB client option that, once arm is
// called with fn, runs fn once just before the next TransactWriteItems is
// sent, and ran, which reports whether it has: a change that commits
// between another request's read and its transaction, at a known point
// instead of by chance. fn may send requests through the same client
// (they do not run it again).
func BeforeNextTransaction() (opt func(*dynamodb.Options), arm func(fn func()), ran func() bool) {
	var mu sync.Mutex
	var next func()
	opt, _ = Faults(func(op string, _ int) Fault {
		if op != "TransactWriteItems" {
			return NoFault
		}
		mu.Lock()
		fn := next
		next = nil
		mu.Unlock()
		if fn != nil {
			fn()
		}
		return NoFault
	})
	arm = func(fn func()) {
		mu.Lock()
		next = fn
		mu.Unlock()
	}
	ran = func() bool {
		mu.Lock()
		defer mu.Unlock()
		return next == nil
	}
	return opt, arm, ran
}

// conflictError is the cancellation DynamoDB returns when another
// transaction holds one of the items: every reason is TransactionConflict
// or None.
func conflictError() error {
	return &types.TransactionCanceledException{
		Message: aws.String("Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]"),
		CancellationReasons: []types.CancellationReason{
			{Code: aws.String("TransactionConflict"), Message: aws.String("Transaction is ongoing for the item")},
		},
	}
}

// Counter counts DynamoDB calls by operation name.
type Counter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *Counter) add(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
	return c.calls[op]
}

// Get returns how many calls of op were made.
func (c *Counter) Get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

// Reset forgets all counts.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = map[string]int{}
}

// Snapshot returns a copy of the counts.
func (c *Counter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		m[k] = v
	}
	return m
}
