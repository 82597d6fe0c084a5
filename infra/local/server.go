package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"licenseadmin/infra/template"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/localauth"
)

// maxBodyBytes is API Gateway's payload limit: larger requests answer 413
// without reaching a function.
const maxBodyBytes = 10 << 20

// integrationTimeout is API Gateway's limit on a Lambda integration; the
// handler's context carries it as the function's deadline.
const integrationTimeout = 30 * time.Second

// server is the local API: it routes requests from the template's HttpApi
// events, authorizes them like the JWT authorizer, builds payload 2.0
// events, calls the functions' handlers in-process and writes back their
// responses, with API Gateway's own answers for what never reaches a
// function (404, 401, 413, 500).
type server struct {
	router   *router
	handlers map[string]apigw.Handler
	auth     *localauth.Authorizer
	log      *log.Logger
	now      func() time.Time
}

// newServer builds the local API for tpl. It returns an error naming every
// API function of the template that has no handler in handlers.
func newServer(tpl *template.Template, handlers map[string]apigw.Handler, auth *localauth.Authorizer, logger *log.Logger) (*server, error) {
	rt, err := newRouter(tpl.Functions)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, fn := range tpl.Functions {
		if len(fn.Routes) > 0 && handlers[fn.LogicalID] == nil {
			missing = append(missing, fn.LogicalID)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no handler for the template's API functions %s: add them to apiHandlers in infra/local/handlers.go", strings.Join(missing, ", "))
	}
	return &server{router: rt, handlers: handlers, auth: auth, log: logger, now: time.Now}, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	reqID := newRequestID()
	w.Header().Set("Apigw-Requestid", reqID)
	status, target := s.serve(w, r, reqID, start)
	ms := float64(s.now().Sub(start).Microseconds()) / 1000
	s.log.Printf("%s %s %d %s %.1fms %s", r.Method, loggedURI(r.URL), status, target, ms, reqID)
}

// secretParams are the query parameters whose values are credentials: the
// activation link's token activates an account, so the request log shows
// that it was there, not what it was.
var secretParams = []string{"token"}

// loggedURI is u's path and query as the request log shows them, secret
// query values replaced by "REDACTED".
func loggedURI(u *url.URL) string {
	q := u.Query()
	redacted := false
	for _, name := range secretParams {
		if vs, ok := q[name]; ok {
			for i := range vs {
				vs[i] = "REDACTED"
			}
			redacted = true
		}
	}
	if !redacted {
		return u.RequestURI()
	}
	c := *u
	c.RawQuery = q.Encode()
	return c.RequestURI()
}

// serve answers r and returns the status and what answered (a function's
// logical id, or "gateway").
func (s *server) serve(w http.ResponseWriter, r *http.Request, reqID string, now time.Time) (int, string) {
	rt, params, ok := s.router.match(r.Method, r.URL.EscapedPath())
	if !ok {
		return gatewayError(w, http.StatusNotFound, "Not Found"), "gateway"
	}
	if r.ContentLength > maxBodyBytes {
		return gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large"), "gateway"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large"), "gateway"
	case err != nil:
		return gatewayError(w, http.StatusBadRequest, "Bad Request"), "gateway"
	}
	var claims *events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription
	if !rt.Public {
		var aerr *localauth.Error
		if claims, aerr = s.auth.Authorize(r.Header, rt.Scopes); aerr != nil {
			w.Header().Set("WWW-Authenticate", aerr.Header())
			return gatewayError(w, aerr.Status, aerr.Message()), "authorizer"
		}
	}
	ev := buildEvent(r, body, rt, params, claims, reqID, now)
	resp, err := s.invoke(r.Context(), rt.function, ev)
	if err != nil {
		s.log.Printf("%s: %v", rt.function, err)
		return gatewayError(w, http.StatusInternalServerError, "Internal Server Error"), rt.function
	}
	if err := writeResponse(w, resp); err != nil {
		s.log.Printf("%s: %v", rt.function, err)
		return gatewayError(w, http.StatusInternalServerError, "Internal Server Error"), rt.function
	}
	return resp.StatusCode, rt.function
}

// invoke calls a function's handler as the Lambda runtime would: with a
// Lambda context and a deadline, outliving a client that hangs up, and a
// panic turned into an invocation error.
func (s *server) invoke(ctx context.Context, function string, ev events.APIGatewayV2HTTPRequest) (resp events.APIGatewayV2HTTPResponse, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), integrationTimeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newUUID(),
		InvokedFunctionArn: "arn:aws:lambda:" + localRegion + ":" + localAccountID + ":function:" + function,
	})
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return s.handlers[function](ctx, ev)
}

// localRegion is the region in local ARNs.
const localRegion = "us-east-1"

// writeResponse writes a payload 2.0 response: status, headers, multi-value
// headers, cookies as Set-Cookie, and the body (decoded when base64). It
// writes nothing and returns an error when API Gateway would answer 500.
func writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) error {
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		return fmt.Errorf("invalid statusCode %d in the function's response", resp.StatusCode)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			return fmt.Errorf("the function's response body is not valid base64: %w", err)
		}
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // no sniffing: API Gateway adds no type
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}

// gatewayError writes one of API Gateway's own answers and returns status.
func gatewayError(w http.ResponseWriter, status int, message string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, message)
	return status
}

// newUUID returns a random (version 4) UUID, the shape of Lambda request ids.
func newUUID() string {
	b := []byte(randomHex(16))
	b[12] = '4'
	b[16] = "89ab"[b[16]%4]
	s := string(b)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
