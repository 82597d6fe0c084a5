// Package selfinvoke starts a fresh invocation of the running Lambda
// function, asynchronously: how a job that outlasts one invocation's time
// limit goes on (the bulk import continues from its checkpoint this way).
// The function's role needs lambda:InvokeFunction on the function itself.
package selfinvoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// Invoker invokes one function with InvocationType Event: Lambda queues
// the event and retries it (twice) if the invocation fails.
type Invoker struct {
	Client *lambda.Client
	// FunctionName is the function to invoke: the running one's name, as
	// the Lambda runtime sets AWS_LAMBDA_FUNCTION_NAME.
	FunctionName string
}

// Invoke queues an invocation with payload encoded as JSON.
func (i *Invoker) Invoke(ctx context.Context, payload any) error {
	if i.FunctionName == "" {
		return errors.New("selfinvoke: no function name (AWS_LAMBDA_FUNCTION_NAME is set by the Lambda runtime only)")
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("selfinvoke: encode payload: %w", err)
	}
	out, err := i.Client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   &i.FunctionName,
		InvocationType: types.InvocationTypeEvent,
		Payload:        b,
	})
	if err != nil {
		return fmt.Errorf("selfinvoke: invoke %s: %w", i.FunctionName, err)
	}
	if out.StatusCode != http.StatusAccepted {
		return fmt.Errorf("selfinvoke: invoke %s: status %d, want 202", i.FunctionName, out.StatusCode)
	}
	return nil
}
