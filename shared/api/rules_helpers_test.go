package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// Helpers shared by users_test.go and rules_test.go. They build on the
// fixture of license_test.go.

// userBody is a valid POST /v1/users body for email.
func userBody(email, role string) map[string]string {
	return map[string]string{"email": email, "firstName": "Grace", "lastName": "Hopper", "language": "fr", "role": role}
}

// userAs adds a user with role to the account of admin and returns its id.
func (f *fixture) userAs(t *testing.T, admin, email, role string) string {
	t.Helper()
	r := f.h.create(apitest.Request{Route: routeUsers, Email: admin, Body: userBody(email, role)})
	r.Want(t, http.StatusCreated)
	return r.User(t).ID
}

// idemKey returns the headers of a request carrying Idempotency-Key k.
func idemKey(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

// userReq builds a request on a route with a {userId} parameter.
func userReq(route, caller, userID string, body any) apitest.Request {
	return apitest.Request{Route: route, Params: map[string]string{"userId": userID}, Email: caller, Body: body}
}

// withHeaders returns r with headers h.
func withHeaders(r apitest.Request, h map[string]string) apitest.Request {
	r.Headers = h
	return r
}

// fields returns the "errors" of a problem as "field:code" strings, sorted.
func fields(p apigw.Problem) []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field+":"+e.Code)
	}
	sort.Strings(out)
	return out
}

// wantSameAnswer fails unless got and want are the same answer once each
// one's own id (gotID, wantID) is replaced by a placeholder and the request
// ids are left out: same status, same headers, same body fields. It proves
// that an id of another account answers exactly like an unknown id.
func wantSameAnswer(t *testing.T, got, want *apitest.Response, gotID, wantID string) {
	t.Helper()
	norm := func(r *apitest.Response, id string) (map[string]any, []string) {
		t.Helper()
		body := r.Body
		if id != "" {
			body = strings.ReplaceAll(body, id, "{id}")
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("decode %q: %v", r.Body, err)
		}
		delete(m, "requestId")
		var hs []string
		for k, v := range r.Headers {
			hs = append(hs, k+": "+strings.ReplaceAll(v, id, "{id}"))
		}
		sort.Strings(hs)
		return m, hs
	}
	gb, gh := norm(got, gotID)
	wb, wh := norm(want, wantID)
	if got.StatusCode != want.StatusCode || !reflect.DeepEqual(gb, wb) || !reflect.DeepEqual(gh, wh) {
		t.Fatalf("answers differ:\n got  %d %v %s\n want %d %v %s", got.StatusCode, gh, got.Body, want.StatusCode, wh, want.Body)
	}
}

// wantReplay fails unless again is the replay of first: same status, same
// body byte for byte, the same headers plus Idempotent-Replayed: true.
func wantReplay(t *testing.T, first, again *apitest.Response) {
	t.Helper()
	if first.Headers["Idempotent-Replayed"] != "" {
		t.Fatalf("first answer is marked as replayed: %v", first.Headers)
	}
	if again.StatusCode != first.StatusCode || again.Body != first.Body {
		t.Fatalf("replay differs:\n first %d %s\n again %d %s", first.StatusCode, first.Body, again.StatusCode, again.Body)
	}
	if again.Headers["Idempotent-Replayed"] != "true" {
		t.Fatalf("replay headers %v, want Idempotent-Replayed: true", again.Headers)
	}
	for k, v := range first.Headers {
		if again.Headers[k] != v {
			t.Fatalf("replay header %s = %q, want %q as first sent", k, again.Headers[k], v)
		}
	}
}

// page is the body of a list answer.
type page struct {
	Items      []*licadmin.User `json:"items"`
	NextCursor *string          `json:"nextCursor"`
}

// listPage calls GET /v1/users as caller with query and returns the page;
// it checks the list shape: exactly "items" (an array) and "nextCursor".
func (f *fixture) listPage(t *testing.T, caller string, query map[string]string) page {
	t.Helper()
	r := f.h.list(apitest.Request{Route: routeList, Email: caller, Query: query})
	var p page
	r.Page(t, &p)
	return p
}

// listAll follows nextCursor from the first page and returns the ids of
// every page, in order.
func (f *fixture) listAll(t *testing.T, caller string, query map[string]string) [][]string {
	t.Helper()
	var pages [][]string
	for _, us := range f.pages(t, caller, query) {
		var ids []string
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		pages = append(pages, ids)
	}
	return pages
}

// pages follows nextCursor through GET /v1/users as caller with query and
// returns the users of every page, in order.
func (f *fixture) pages(t *testing.T, caller string, query map[string]string) [][]*licadmin.User {
	t.Helper()
	return apitest.Pages[*licadmin.User](t, query, func(q map[string]string) *apitest.Response {
		return f.h.list(apitest.Request{Route: routeList, Email: caller, Query: q})
	})
}

// flatten concatenates pages.
func flatten(pages [][]string) []string {
	var all []string
	for _, p := range pages {
		all = append(all, p...)
	}
	return all
}

// setStatus sets a user's status directly in the table: activation has no
// route yet, and lists must filter on it.
func setStatus(t *testing.T, env *apitest.Env, userID string, s licadmin.Status) {
	t.Helper()
	_, err := env.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(env.Table),
		Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#" + userID}, "sk": &types.AttributeValueMemberS{Value: "USER"}},
		UpdateExpression:          aws.String("SET #s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: string(s)}},
	})
	if err != nil {
		t.Fatalf("set status of %s: %v", userID, err)
	}
}

// accountState returns every item that belongs to an account, keyed by
// pk and sk, each rendered canonically: its own partition (account, pool,
// orders, domains, audit), its users, and its email and domain claims.
// Comparing two states proves that nothing of the account changed.
func accountState(t *testing.T, env *apitest.Env, accountID string) map[string]string {
	t.Helper()
	state := map[string]string{}
	for _, it := range env.Scan(t) {
		pk := avString(it["pk"])
		owner := avString(it["accountId"])
		if strings.HasPrefix(pk, "ACCT#"+accountID) || owner == accountID {
			state[pk+" | "+avString(it["sk"])] = apitest.CanonItem(it)
		}
	}
	if len(state) == 0 {
		t.Fatalf("account %s has no items", accountID)
	}
	return state
}

// wantState fails unless the account's items are those of before.
func wantState(t *testing.T, env *apitest.Env, accountID string, before map[string]string) {
	t.Helper()
	after := accountState(t, env, accountID)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("item %s changed:\n before %s\n after  %s", k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("item %s appeared: %s", k, v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func avString(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
