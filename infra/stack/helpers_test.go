package stack

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"licenseadmin/infra/template"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/localauth"
)

var testKeys struct {
	once       sync.Once
	key, other *SigningKey
	err        error
}

// keys returns the signing key of the tests and a second, unrelated key
// (generated once per test binary: RSA generation is slow).
func keys(tb testing.TB) (key, other *SigningKey) {
	tb.Helper()
	testKeys.once.Do(func() {
		gen := func() *SigningKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				testKeys.err = err
				return nil
			}
			return &SigningKey{private: k, kid: localauth.Thumbprint(&k.PublicKey)}
		}
		testKeys.key, testKeys.other = gen(), gen()
	})
	if testKeys.err != nil {
		tb.Fatal(testKeys.err)
	}
	return testKeys.key, testKeys.other
}

func mustParseTemplate(tb testing.TB, path string) *template.Template {
	tb.Helper()
	tpl, err := template.ParseFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return tpl
}

// recorder is a fake function handler that remembers the events it got
// and answers with resp (or err).
type recorder struct {
	mu     sync.Mutex
	events []events.APIGatewayV2HTTPRequest
	resp   events.APIGatewayV2HTTPResponse
	err    error
}

func (r *recorder) handle(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return r.resp, r.err
}

func (r *recorder) last(tb testing.TB) events.APIGatewayV2HTTPRequest {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		tb.Fatal("the function was not invoked")
	}
	return r.events[len(r.events)-1]
}

// testAPI is the local API over testdata/template.yaml on a real loopback
// listener, each function answering 200 with its own name.
type testAPI struct {
	URL   string
	funcs map[string]*recorder
}

func newTestAPI(tb testing.TB) *testAPI {
	tb.Helper()
	tpl := mustParseTemplate(tb, "testdata/template.yaml")
	api := &testAPI{funcs: map[string]*recorder{}}
	handlers := map[string]apigw.Handler{}
	for _, fn := range tpl.Functions {
		rec := &recorder{resp: events.APIGatewayV2HTTPResponse{
			StatusCode: 200,
			Headers:    map[string]string{"Content-Type": "application/json"},
			Body:       `{"function":"` + fn.LogicalID + `"}`,
		}}
		api.funcs[fn.LogicalID] = rec
		handlers[fn.LogicalID] = rec.handle
	}
	key, _ := keys(tb)
	srv, err := newServer(tpl, handlers, newAuthorizer(key), log.New(io.Discard, "", 0))
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	tb.Cleanup(ts.Close)
	api.URL = ts.URL
	return api
}

// mustToken returns a token signed by key with the given claims.
func mustToken(tb testing.TB, key *SigningKey, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = key.kid
	s, err := tok.SignedString(key.private)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// validClaims returns the claims of a token the local authorizer accepts.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"email": "ann@example.com",
		"sub":   "local|ann",
		"iss":   Issuer,
		"aud":   Audience,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
}

// asJSON round-trips v through JSON into generic values, for comparisons
// that ignore Go types.
func asJSON(tb testing.TB, v any) map[string]any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}
