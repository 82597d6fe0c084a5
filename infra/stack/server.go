package stack

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

// integrationTimeout is API Gateway's limit on a Lambda integration: a
// function's handler gets the shorter of it and the function's Timeout as
// its deadline, as in AWS.
const integrationTimeout = 30 * time.Second

// server is the local API: it routes requests from the template's HttpApi
// events, authorizes them like the JWT authorizer, builds payload 2.0
// events, calls the functions' handlers in-process and writes back their
// responses, with API Gateway's own answers for what never reaches a
// function (404, 401, 413, 500).
type server struct {
	router   *router
	handlers map[string]apigw.Handler
	// deadlines are the functions' min(Timeout, integrationTimeout).
	deadlines map[string]time.Duration
	auth      *localauth.Authorizer
	log       *log.Logger
	now       func() time.Time
	// cors is the API's CorsConfiguration from the template; its origins
	// come from ALLOWED_ORIGINS locally (run.go). nil: no CORS.
	cors *template.CORS
}

// newServer builds the local API for tpl. It returns an error naming every
// API function of the template that has no handler in handlers.
func newServer(tpl *template.Template, handlers map[string]apigw.Handler, auth *localauth.Authorizer, logger *log.Logger) (*server, error) {
	rt, err := newRouter(tpl.Functions)
	if err != nil {
		return nil, err
	}
	var missing []string
	deadlines := map[string]time.Duration{}
	for _, fn := range tpl.Functions {
		if len(fn.Routes) > 0 && handlers[fn.LogicalID] == nil {
			missing = append(missing, fn.LogicalID)
		}
		deadlines[fn.LogicalID] = min(fn.Timeout, integrationTimeout)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no handler for the template's API functions %s: add them to apiHandlers in infra/stack/handlers.go", strings.Join(missing, ", "))
	}
	srv := &server{router: rt, handlers: handlers, deadlines: deadlines, auth: auth, log: logger, now: time.Now}
	if tpl.CORS != nil {
		c := *tpl.CORS
		srv.cors = &c
	}
	return srv, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	reqID := NewRequestID()
	w.Header().Set("Apigw-Requestid", reqID)
	var status int
	target := "gateway"
	if s.isPreflight(r) {
		status = s.preflight(w, r)
	} else {
		s.corsHeaders(w.Header(), r)
		status, target = s.serve(w, r, reqID, start)
	}
	ms := float64(s.now().Sub(start).Microseconds()) / 1000
	s.log.Printf("%s %s %d %s %.1fms %s", r.Method, loggedURI(r.URL), status, target, ms, reqID)
}

// allowOrigins sets the origins of the API's CORS configuration, as the
// AllowedOrigins parameter does in AWS: a comma-separated list, or, when
// empty, any origin ("*"), since a local portal may run on any port.
func (s *server) allowOrigins(list string) {
	if s.cors == nil {
		return
	}
	s.cors.AllowOrigins = []string{"*"}
	if list != "" {
		s.cors.AllowOrigins = strings.Split(list, ",")
	}
}

// isPreflight reports whether r is a CORS preflight that API Gateway
// answers itself when the API has a CORS configuration: an OPTIONS request
// with Origin and Access-Control-Request-Method, before any route or
// authorizer.
func (s *server) isPreflight(r *http.Request) bool {
	return s.cors != nil && r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// preflight answers a preflight as API Gateway does: 204, and for an
// allowed origin the allowed methods, headers and max age.
func (s *server) preflight(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	if origin, ok := s.allowedOrigin(r.Header.Get("Origin")); ok {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", strings.Join(s.cors.AllowMethods, ","))
		h.Set("Access-Control-Allow-Headers", strings.ToLower(strings.Join(s.cors.AllowHeaders, ",")))
		if s.cors.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", fmt.Sprint(s.cors.MaxAge))
		}
	}
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// corsHeaders adds to the answer of a request from an allowed origin the
// headers API Gateway adds: the origin allowed and the headers exposed.
func (s *server) corsHeaders(h http.Header, r *http.Request) {
	if s.cors == nil || r.Header.Get("Origin") == "" {
		return
	}
	h.Add("Vary", "Origin")
	origin, ok := s.allowedOrigin(r.Header.Get("Origin"))
	if !ok {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if len(s.cors.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.ToLower(strings.Join(s.cors.ExposeHeaders, ",")))
	}
}

// allowedOrigin returns the Access-Control-Allow-Origin value for origin
// ("*" when any origin is allowed), and false when it is not allowed.
func (s *server) allowedOrigin(origin string) (string, bool) {
	for _, o := range s.cors.AllowOrigins {
		switch {
		case o == "*":
			return "*", true
		case strings.EqualFold(o, origin):
			return origin, true
		}
	}
	return "", false
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
// Lambda context and the function's deadline, outliving a client that
// hangs up, and a panic turned into an invocation error.
func (s *server) invoke(ctx context.Context, function string, ev events.APIGatewayV2HTTPRequest) (resp events.APIGatewayV2HTTPResponse, err error) {
	ctx, cancel := lambdaContext(context.WithoutCancel(ctx), function, s.deadlines[function])
	defer cancel()
	defer recoverPanic(&err)
	resp, err = s.handlers[function](ctx, ev)
	if err == nil && ctx.Err() != nil {
		// Lambda ends a function at its timeout: the answer never comes.
		err = fmt.Errorf("function timed out after %s", s.deadlines[function])
	}
	return resp, err
}

// lambdaContext is the context of one invocation of function, as the
// Lambda runtime gives it: a request id, the function's ARN, and its
// timeout as the deadline.
func lambdaContext(parent context.Context, function string, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	return lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newUUID(),
		InvokedFunctionArn: "arn:aws:lambda:" + LocalRegion + ":" + LocalAccountID + ":function:" + function,
	}), cancel
}

// recoverPanic turns a handler's panic into its invocation's error, as
// the Lambda runtime reports it; defer it.
func recoverPanic(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("handler panicked: %v", p)
	}
}

// LocalRegion is the region in local ARNs.
const LocalRegion = "us-east-1"

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
