// Package apispec reads openapi.yaml, the description of the HTTP API, for
// the tests that hold the code to it: the handlers' responses are validated
// against it (shared/api), its operations are compared with template.yaml's
// routes, and the API fuzzing (make fuzz-api) runs on the operations that
// the template serves.
package apispec

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"licenseadmin"
)

// Load parses and validates the project's openapi.yaml. It returns an error
// naming the problem when the document is not a valid OpenAPI 3.1 document
// (a broken $ref, an example that contradicts its schema, ...).
func Load(ctx context.Context) (*openapi3.T, error) {
	return Parse(ctx, licenseadmin.OpenAPI)
}

// Parse parses and validates an OpenAPI document.
func Parse(ctx context.Context, b []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not valid: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi.yaml: openapi %q, want 3.1", doc.OpenAPI)
	}
	return doc, nil
}

// Operation is one operation of the document.
type Operation struct {
	// Method is upper-case, as in template routes and API Gateway route keys.
	Method string
	// Path is the path template, such as /v1/users/{userId}.
	Path string
	// ID is the operationId.
	ID string
	// Public is true when the operation needs no token (security: []).
	Public bool
}

// Key returns the operation's API Gateway route key, "METHOD /path", the
// form template.Route.Key returns.
func (o Operation) Key() string { return o.Method + " " + o.Path }

// Operations lists every operation of doc sorted by path, then method.
func Operations(doc *openapi3.T) []Operation {
	var ops []Operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			ops = append(ops, Operation{Method: strings.ToUpper(method), Path: path, ID: op.OperationID, Public: len(sec) == 0})
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	return ops
}

// Route returns the route of the operation with the given route key
// ("POST /v1/users"), for openapi3filter's validation inputs. It returns an
// error when the document has no such operation.
func Route(doc *openapi3.T, key string) (*routers.Route, error) {
	method, path, ok := strings.Cut(key, " ")
	if !ok {
		return nil, fmt.Errorf("route key %q: want \"METHOD /path\"", key)
	}
	item := doc.Paths.Value(path)
	if item == nil {
		return nil, fmt.Errorf("openapi.yaml has no path %s", path)
	}
	op := item.GetOperation(strings.ToUpper(method))
	if op == nil {
		return nil, fmt.Errorf("openapi.yaml has no %s operation on %s", method, path)
	}
	return &routers.Route{Spec: doc, Path: path, PathItem: item, Method: strings.ToUpper(method), Operation: op}, nil
}

// ByID returns the operation whose operationId is id.
func ByID(doc *openapi3.T, id string) (Operation, bool) {
	for _, op := range Operations(doc) {
		if op.ID == id {
			return op, true
		}
	}
	return Operation{}, false
}

// Methods are the HTTP methods an operation may use here.
var Methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
