package stack

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Values the local API puts where API Gateway puts its account and API ids.
const (
	LocalAccountID = "123456789012"
	localAPIID     = "local"
)

// requestTimeFormat is API Gateway's requestContext.time layout.
const requestTimeFormat = "02/Jan/2006:15:04:05 -0700"

// buildEvent turns an HTTP request into the payload 2.0 event API Gateway
// would send for route: lower-cased header names with repeated values
// joined by commas, cookies moved out of the headers, decoded query
// parameters joined the same way, decoded path and path parameters, the
// client's address as sourceIp, and the body base64-encoded unless it is
// text. jwt is nil on public routes.
func buildEvent(r *http.Request, body []byte, rt *apiRoute, params map[string]string, jwt *events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription, requestID string, now time.Time) events.APIGatewayV2HTTPRequest {
	sourceIP := clientIP(r)
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       rt.Key(),
		RawPath:        r.URL.Path,
		RawQueryString: r.URL.RawQuery,
		Cookies:        cookies(r.Header),
		Headers:        headers(r, sourceIP, now),
		PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     rt.Key(),
			AccountID:    LocalAccountID,
			Stage:        "$default",
			RequestID:    requestID,
			APIID:        localAPIID,
			DomainName:   hostname(r.Host),
			DomainPrefix: strings.SplitN(hostname(r.Host), ".", 2)[0],
			Time:         now.UTC().Format(requestTimeFormat),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if q, _ := url.ParseQuery(r.URL.RawQuery); len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if jwt != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{JWT: jwt}
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// headers returns the request's headers as API Gateway forwards them, with
// the host and the x-forwarded-* and x-amzn-trace-id headers it adds.
func headers(r *http.Request, sourceIP string, now time.Time) map[string]string {
	h := make(map[string]string, len(r.Header)+5)
	for k, vs := range r.Header {
		k = strings.ToLower(k)
		if k == "cookie" {
			continue
		}
		h[k] = strings.Join(vs, ",")
	}
	h["host"] = r.Host
	if r.ContentLength > 0 {
		h["content-length"] = fmt.Sprint(r.ContentLength)
	}
	if prior := h["x-forwarded-for"]; prior != "" {
		h["x-forwarded-for"] = prior + ", " + sourceIP
	} else {
		h["x-forwarded-for"] = sourceIP
	}
	h["x-forwarded-proto"] = "http"
	if r.TLS != nil {
		h["x-forwarded-proto"] = "https"
	}
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(addr.String()); err == nil {
			h["x-forwarded-port"] = port
		}
	}
	h["x-amzn-trace-id"] = fmt.Sprintf("Root=1-%08x-%s", now.Unix(), randomHex(12))
	return h
}

// cookies returns the request's cookies one per element, as payload 2.0
// carries them instead of a cookie header; nil when there are none.
func cookies(h http.Header) []string {
	var out []string
	for _, line := range h.Values("Cookie") {
		for _, c := range strings.Split(line, ";") {
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// isText reports whether API Gateway passes a body of this content type as
// text rather than base64: text/*, JSON, XML and JavaScript.
func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript":
		return true
	}
	return false
}

// clientIP is the address of the connection's peer; like API Gateway, it
// ignores X-Forwarded-For, which the client controls.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// NewRequestID returns an id shaped like API Gateway's (base64 of 10
// random bytes, as in "Mc7UVioPPHcEKPA=").
func NewRequestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
