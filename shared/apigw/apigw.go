// Package apigw adapts API Gateway HTTP API (payload 2.0) events to domain
// operations: identity from the verified JWT claims, body limits, strict JSON
// decoding, Idempotency-Key handling, problem+json errors and one JSON log
// line per request. Handlers stay thin: they decode input, call a service,
// and return a value.
package apigw

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/shared/idem"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/localauth"
)

// Handler is the Lambda handler signature for API Gateway HTTP API events;
// lambda.Start accepts it, and the local API calls it directly.
type Handler = func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// MaxBodyBytes bounds request bodies; larger ones answer 413 before any
// decoding (API Gateway itself allows 10 MB).
const MaxBodyBytes = 64 << 10

// Request is what an operation sees of an HTTP call.
type Request struct {
	licadmin.Request
	Method  string
	Route   string
	Path    map[string]string
	Query   map[string]string
	Headers map[string]string
	Body    []byte
}

// Param returns the path parameter name.
func (r *Request) Param(name string) string { return r.Path[name] }

// Header returns a request header by case-insensitive name.
func (r *Request) Header(name string) string { return r.Headers[strings.ToLower(name)] }

// Decode parses the JSON body into v, refusing unknown fields, trailing data
// and non-JSON content so that a typo is reported instead of ignored. It
// returns EINVALID errors that name the offending field, or "body" when
// the body as a whole is at fault (every validation error lists fields).
func (r *Request) Decode(v any) error {
	if ct := r.Header("content-type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return licadmin.Errorf(licadmin.EUNSUPPORTEDMEDIATYPE, "send the body as application/json")
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return licadmin.Invalid("body", "required", "a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return licadmin.Invalid("body", "trailing_data", "the body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return licadmin.Invalid("body", "not_object", "the body must be a JSON object")
		}
		return licadmin.Invalid(field, "invalid_type", fmt.Sprintf("%s must be of type %s", field, typeErr.Type))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return licadmin.Invalid("body", "invalid_json", "the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return licadmin.Invalid(field, "unknown_field", fmt.Sprintf("unknown field %q", field))
	}
	return licadmin.Invalid("body", "invalid_json", "the body could not be read as JSON")
}

// Response is an operation's successful answer. Body is encoded as JSON
// unless Raw is set.
type Response struct {
	Status  int
	Body    any
	Raw     []byte
	Headers map[string]string
}

// OK returns a 200 response with body v.
func OK(v any) (*Response, error) { return &Response{Status: http.StatusOK, Body: v}, nil }

// Operation is one route's logic.
type Operation func(ctx context.Context, r *Request) (*Response, error)

// IdempotencyStore remembers responses to requests that carried an
// Idempotency-Key. Put must fail with idem.ErrReplay when the record exists.
type IdempotencyStore interface {
	GetIdempotency(ctx context.Context, scope, key string, now time.Time) (*idem.Record, error)
	PutIdempotency(ctx context.Context, r *idem.Record, now time.Time) error
}

// Server turns operations into Lambda handlers sharing logging and
// idempotency.
type Server struct {
	Logger      *slog.Logger
	Idempotency IdempotencyStore
	Now         func() time.Time
	// Metrics records every request's status and latency; nil records
	// nothing.
	Metrics RequestMetrics
	// TrustUnverifiedEmail accepts a token's email claim without
	// email_verified, for identity providers that verify every address
	// but do not send the claim. Off, such a token answers 403
	// email_unverified: an address nobody proved is nobody's identity.
	TrustUnverifiedEmail bool
	// Callers reads the caller's claim before a remembered answer is
	// replayed, so that only a caller who may still make the request gets
	// it (a demoted admin gets 403, not the answer it had as an admin).
	Callers licadmin.CallerLoader
	// SAMLocal verifies the bearer token of every request to a route that
	// is not public, as the API Gateway JWT authorizer does, when SAM CLI
	// runs the function (sam local does not emulate JWT authorizers). It
	// is nil in AWS, where the gateway has verified the token before the
	// function runs (localauth.FromEnv).
	SAMLocal *localauth.Authorizer
}

// Option changes how Handle treats a route.
type Option func(*route)

type route struct {
	public     bool
	self       bool
	idempotent bool
}

// Public marks a route that needs no token (activation).
func Public() Option { return func(r *route) { r.public = true } }

// Self marks a route that any user of an account may call on its own data
// (/v1/me/...); other routes with a token are for admins. Handle uses it
// only to authorize a replayed answer or a validation error; the
// operation checks the caller as always.
func Self() Option { return func(r *route) { r.self = true } }

// Idempotent marks a mutating route that honours Idempotency-Key.
func Idempotent() Option { return func(r *route) { r.idempotent = true } }

// Handle returns the Lambda handler that runs op for the operation named name.
func (s *Server) Handle(name string, op Operation, opts ...Option) Handler {
	var rt route
	for _, o := range opts {
		o(&rt)
	}
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		start := s.now()
		ctx, trace := licadmin.WithTrace(ctx)
		if s.SAMLocal != nil && !rt.public {
			var refused *events.APIGatewayV2HTTPResponse
			if ev, refused = s.samLocalAuthorize(ev); refused != nil {
				s.log(ctx, name, ev, &Request{}, *refused, licadmin.Errorf(licadmin.EUNAUTHORIZED, "the token was refused"), false, start, "")
				return *refused, nil
			}
		}
		req, err := newRequest(ev)
		var resp events.APIGatewayV2HTTPResponse
		replayed := false
		if err == nil && !rt.public {
			err = s.identify(ev, req)
		}
		if err == nil {
			ctx = licadmin.WithRequest(ctx, req.Request)
			key := req.Header("idempotency-key")
			if rt.idempotent && key != "" {
				resp, replayed, err = s.idempotent(ctx, rt, req, key, op)
			} else {
				resp, err = s.run(ctx, rt, req, op)
			}
		}
		if err != nil {
			resp = s.problem(err, ev.RequestContext.RequestID)
		}
		s.log(ctx, name, ev, req, resp, err, replayed, start, trace.AccountID())
		return resp, nil
	}
}

func (s *Server) run(ctx context.Context, rt route, req *Request, op Operation) (events.APIGatewayV2HTTPResponse, error) {
	out, err := op(ctx, req)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, s.refusal(ctx, rt, req, err)
	}
	return encode(out)
}

// refusal returns err, or the caller's refusal when err is a validation
// error (400) and the caller may not make the request at all: a user who
// is no admin gets 403 on an admin route whatever its input, as it does
// with a valid one, and learns nothing of that route's input rules.
// Operations validate their input before they read the caller, so that a
// bad request costs nothing; only the answer 400 pays this read.
func (s *Server) refusal(ctx context.Context, rt route, req *Request, err error) error {
	if rt.public || licadmin.ErrorCode(err) != licadmin.EINVALID {
		return err
	}
	if aerr := s.authorize(ctx, rt, req); licadmin.ErrorCode(aerr) == licadmin.EFORBIDDEN {
		return aerr
	}
	return err
}

// idempotent runs op at most once per (caller, key): a stored response is
// replayed, a different body under the same key is refused, and the record
// of a change is written by the store in the change's own transaction.
//
// A replay goes only to a caller who may still make the request
// (authorize). What is remembered is bounded: nothing a retry could
// answer differently (forgotten), and on a public route no refusal at all,
// so that anonymous clients with fresh keys cannot write to the table.
func (s *Server) idempotent(ctx context.Context, rt route, req *Request, key string, op Operation) (events.APIGatewayV2HTTPResponse, bool, error) {
	if len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return events.APIGatewayV2HTTPResponse{}, false, s.refusal(ctx, rt, req,
			licadmin.Invalid("Idempotency-Key", "invalid_header", "Idempotency-Key must be 1 to 255 printable ASCII characters"))
	}
	sum := sha256.New()
	// The query is part of the request: DELETE /v1/licenses/eco?quantity=2
	// is another request than ?quantity=1.
	fmt.Fprintf(sum, "%s\n%s\n%s\n%s\n", req.Method, req.Route, canonicalPath(req.Path), canonicalPath(req.Query))
	sum.Write(req.Body)
	hash := hex.EncodeToString(sum.Sum(nil))
	// Keys belong to their caller. A public route (activation) has none:
	// its keys are scoped by the body, which holds the secret (the token),
	// so that nobody else's request can replay or block them.
	scope := req.Email
	if scope == "" {
		body := sha256.Sum256(req.Body)
		scope = "public:" + hex.EncodeToString(body[:16])
	}

	replay := func() (events.APIGatewayV2HTTPResponse, bool, error) {
		if err := s.authorize(ctx, rt, req); err != nil {
			return events.APIGatewayV2HTTPResponse{}, false, err
		}
		rec, err := s.Idempotency.GetIdempotency(ctx, scope, key, s.now())
		if err != nil {
			return events.APIGatewayV2HTTPResponse{}, false, err
		}
		if rec == nil {
			return events.APIGatewayV2HTTPResponse{}, false, licadmin.Errorf(licadmin.EIDEMINPROGRESS, "a request with this Idempotency-Key is in progress; retry shortly")
		}
		if rec.Hash != hash {
			return events.APIGatewayV2HTTPResponse{}, false, licadmin.Errorf(licadmin.EIDEMREUSED, "this Idempotency-Key was used with another request; use a new key for a new request")
		}
		headers := make(map[string]string, len(rec.Headers)+2)
		for k, v := range rec.Headers {
			headers[k] = v
		}
		if rec.ContentType != "" {
			headers["Content-Type"] = rec.ContentType
		}
		headers["Idempotent-Replayed"] = "true"
		return events.APIGatewayV2HTTPResponse{
			StatusCode: rec.Status,
			Headers:    headers,
			Body:       string(rec.Body),
		}, true, nil
	}

	if rec, err := s.Idempotency.GetIdempotency(ctx, scope, key, s.now()); err != nil {
		return events.APIGatewayV2HTTPResponse{}, false, err
	} else if rec != nil {
		return replay()
	}

	pending := &idem.Pending{Record: idem.Record{Scope: scope, Key: key, Hash: hash, CreatedAt: s.now()}}
	resp, err := s.run(idem.With(ctx, pending), rt, req, op)
	if errors.Is(err, idem.ErrReplay) {
		return replay()
	}
	if err != nil {
		if forgotten(licadmin.ErrorCode(err)) {
			// Not remembered: the client should be able to retry.
			return resp, false, err
		}
		resp = s.problem(err, req.RequestID)
		if rt.public && resp.StatusCode < 500 {
			// An anonymous refusal writes nothing; it is cheap to answer
			// again.
			return resp, false, nil
		}
	}
	if !pending.Written {
		// Errors and changes that wrote nothing (a no-op PATCH) are
		// remembered here; a change's record is already in its transaction.
		rec := pending.Record
		rec.Status, rec.ContentType, rec.Body = resp.StatusCode, resp.Headers["Content-Type"], []byte(resp.Body)
		rec.Headers = nil
		for k, v := range resp.Headers {
			if k != "Content-Type" {
				if rec.Headers == nil {
					rec.Headers = map[string]string{}
				}
				rec.Headers[k] = v
			}
		}
		if perr := s.Idempotency.PutIdempotency(ctx, &rec, s.now()); errors.Is(perr, idem.ErrReplay) {
			return replay()
		} else if perr != nil {
			s.logger().ErrorContext(ctx, "idempotency record not saved", "err", RedactEmails(perr.Error()))
		}
	}
	return resp, false, nil
}

// forgotten reports whether an error answer with code is left out of the
// idempotency records, so that a retry with the same key is answered
// afresh: answers that a retry may change without the client changing
// anything — an internal error, a service or a DNS lookup that failed for
// now, a rate limit that passes with time, a request still in progress, a
// domain whose TXT record is not visible yet (DNS changes take time to
// propagate). Every other answer, errors included, is replayed for
// idem.TTL.
func forgotten(code string) bool {
	switch code {
	case licadmin.EINTERNAL, licadmin.EUNAVAILABLE, licadmin.ERATELIMITED, licadmin.EIDEMINPROGRESS, licadmin.EDOMAINUNVERIFIED:
		return true
	}
	return false
}

// authorize checks that the caller may make the request, before a
// remembered answer is replayed and before a validation error is answered
// (refusal): an admin route needs an admin of an account, a Self route any
// user of one, a public route nothing. The operation would have checked
// the same had it run.
func (s *Server) authorize(ctx context.Context, rt route, req *Request) error {
	if rt.public {
		return nil
	}
	if s.Callers == nil {
		return errors.New("apigw: Server.Callers is not set; a caller cannot be authorized")
	}
	c, _, err := s.Callers.LoadCaller(ctx, req.Email)
	if err != nil {
		return err
	}
	if rt.self {
		return licadmin.RequireCaller(c)
	}
	return licadmin.RequireAdmin(c)
}

// Render declares how an idempotent route answers the value its store
// commits when that is not a plain 200 (201 with Location and ETag), so
// that the response remembered in the change's own transaction, and
// replayed on a retry, is the one sent. Call it before the service; it does
// nothing when the request has no Idempotency-Key.
func Render[T any](ctx context.Context, render func(T) *Response) {
	if p := idem.From(ctx); p != nil {
		p.Render = func(v any) (int, map[string]string) {
			t, ok := v.(T)
			if !ok {
				return http.StatusOK, nil
			}
			r := render(t)
			return r.Status, r.Headers
		}
	}
}

// Answer runs a route's change and answers render of what it committed.
// render is declared first (Render), so that the response a retry with the
// same Idempotency-Key replays is the one sent.
func Answer[T any](ctx context.Context, render func(T) *Response, change func() (T, error)) (*Response, error) {
	Render(ctx, render)
	v, err := change()
	if err != nil {
		return nil, err
	}
	return render(v), nil
}

// NoContent renders a deletion's answer, 204 with no body, whatever was
// deleted; give it to Answer.
func NoContent[T any](T) *Response { return &Response{Status: http.StatusNoContent} }

func canonicalPath(p map[string]string) string {
	b, _ := json.Marshal(p) // map keys are sorted by encoding/json
	return string(b)
}

func encode(out *Response) (events.APIGatewayV2HTTPResponse, error) {
	resp := events.APIGatewayV2HTTPResponse{StatusCode: out.Status, Headers: map[string]string{}}
	for k, v := range out.Headers {
		resp.Headers[k] = v
	}
	switch {
	case out.Raw != nil:
		resp.Body = string(out.Raw)
	case out.Body != nil:
		b, err := json.Marshal(out.Body)
		if err != nil {
			return resp, fmt.Errorf("encode response: %w", err)
		}
		resp.Body = string(b)
		resp.Headers["Content-Type"] = "application/json"
	}
	return resp, nil
}

func newRequest(ev events.APIGatewayV2HTTPRequest) (*Request, error) {
	headers := make(map[string]string, len(ev.Headers))
	for k, v := range ev.Headers {
		headers[strings.ToLower(k)] = v
	}
	req := &Request{
		Request: licadmin.Request{
			RequestID: ev.RequestContext.RequestID,
			SourceIP:  ev.RequestContext.HTTP.SourceIP,
		},
		Method:  ev.RequestContext.HTTP.Method,
		Route:   ev.RouteKey,
		Path:    ev.PathParameters,
		Query:   ev.QueryStringParameters,
		Headers: headers,
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return req, licadmin.Invalid("body", "invalid_base64", "the body is not valid base64")
		}
	}
	if len(body) > MaxBodyBytes {
		return req, licadmin.Errorf(licadmin.ETOOLARGE, "the body exceeds %d bytes", MaxBodyBytes)
	}
	req.Body = body
	return req, nil
}

// samLocalAuthorize does under sam local what API Gateway's JWT authorizer
// does before a function runs: it verifies the Authorization header and
// puts the claims in the event, as the gateway hands them to the function,
// which then reads the caller from them like in AWS (identify). A token
// it refuses gets the gateway's answer: 401 {"message":"Unauthorized"}
// with WWW-Authenticate. Whatever authorizer context the event carried is
// replaced: nothing has verified it.
func (s *Server) samLocalAuthorize(ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPRequest, *events.APIGatewayV2HTTPResponse) {
	h := http.Header{}
	for k, v := range ev.Headers {
		h.Set(k, v)
	}
	jwt, aerr := s.SAMLocal.Authorize(h, nil)
	if aerr != nil {
		b, _ := json.Marshal(map[string]string{"message": aerr.Message()})
		return ev, &events.APIGatewayV2HTTPResponse{
			StatusCode: aerr.Status,
			Headers:    map[string]string{"Content-Type": "application/json", "WWW-Authenticate": aerr.Header()},
			Body:       string(b),
		}
	}
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{JWT: jwt}
	return ev, nil
}

// identify sets req.Email from the verified token's claims, the one place
// where a caller's identity is read: API Gateway's JWT authorizer (or the
// local stack's, which does the same) has already checked signature,
// issuer, audience and expiry, and nothing in the body, path or headers can
// name the caller. The email counts only when the token says the provider
// verified it (email_verified true, as a boolean or the string "true"),
// unless the deployment trusts unverified addresses. It fails with
// EUNAUTHORIZED without an email claim and EEMAILUNVERIFIED without proof.
func (s *Server) identify(ev events.APIGatewayV2HTTPRequest, req *Request) error {
	email, verified := identity(ev)
	if email == "" {
		return licadmin.Errorf(licadmin.EUNAUTHORIZED, "a bearer token with an email claim is required")
	}
	if !verified && !s.TrustUnverifiedEmail {
		return licadmin.Errorf(licadmin.EEMAILUNVERIFIED, "the token's email address is not verified by its identity provider; verify it there and sign in again")
	}
	req.Email = email
	return nil
}

// identity returns the canonical email claim of an event's verified token
// and whether the token says the address was verified. API Gateway writes
// every claim as a string (a boolean true as "true"), so both forms of
// email_verified read the same.
func identity(ev events.APIGatewayV2HTTPRequest) (email string, verified bool) {
	a := ev.RequestContext.Authorizer
	if a == nil || a.JWT == nil {
		return "", false
	}
	claims := a.JWT.Claims
	return licadmin.NormalizeEmail(claims["email"]), strings.EqualFold(strings.TrimSpace(claims["email_verified"]), "true")
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

// log writes the request's one log line and records its metrics. The line
// never holds a token, a body, or an email address: the caller is known by
// its account id, and email addresses in error texts are masked.
func (s *Server) log(ctx context.Context, name string, ev events.APIGatewayV2HTTPRequest, req *Request, resp events.APIGatewayV2HTTPResponse, err error, replayed bool, start time.Time, accountID string) {
	latency := s.now().Sub(start)
	if s.Metrics != nil {
		s.Metrics.Request(name, resp.StatusCode, latency)
	}
	attrs := []any{
		"op", name,
		"requestId", ev.RequestContext.RequestID,
		"method", ev.RequestContext.HTTP.Method,
		"route", ev.RouteKey,
		"status", resp.StatusCode,
		"outcome", outcome(resp.StatusCode),
		"latencyMs", float64(latency.Microseconds()) / 1000,
	}
	if accountID != "" {
		attrs = append(attrs, "accountId", accountID)
	}
	if replayed {
		attrs = append(attrs, "idempotentReplay", true)
	}
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, "code", licadmin.ErrorCode(err))
		if resp.StatusCode >= 500 {
			level = slog.LevelError
			attrs = append(attrs, "err", RedactEmails(err.Error()))
		}
	}
	s.logger().Log(ctx, level, "request", attrs...)
}
