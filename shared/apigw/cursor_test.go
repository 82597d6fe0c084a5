package apigw_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"licenseadmin/shared/apigw"
	"licenseadmin/shared/licadmin"
)

type fixedKey []byte

func (k fixedKey) CursorKey(context.Context) ([]byte, error) { return k, nil }

// TestCursors ensures cursors round-trip in their scope and that an edited,
// truncated or foreign cursor, or one used in another scope, is refused.
func TestCursors(t *testing.T) {
	ctx := context.Background()
	c := &apigw.Cursors{Keys: fixedKey(strings.Repeat("k", 32))}
	pos := []byte(`["USER#1","USER","ACCT#a#USERS","1"]`)
	cur, err := c.Encode(ctx, "scope-a", pos)
	if err != nil || cur == nil {
		t.Fatalf("Encode: %v %v", cur, err)
	}
	if strings.Contains(*cur, "USER") {
		t.Fatalf("cursor %q is readable", *cur)
	}
	got, err := c.Decode(ctx, "scope-a", *cur)
	if err != nil || string(got) != string(pos) {
		t.Fatalf("Decode = %q, %v; want %q", got, err, pos)
	}
	if none, _ := c.Encode(ctx, "scope-a", nil); none != nil {
		t.Fatalf("the last page's cursor = %q, want nil", *none)
	}
	other := &apigw.Cursors{Keys: fixedKey(strings.Repeat("x", 32))}
	flipped := []byte(*cur)
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct {
		c      *apigw.Cursors
		scope  string
		cursor string
	}{
		"other scope": {c, "scope-b", *cur},
		"edited":      {c, "scope-a", string(flipped)},
		"truncated":   {c, "scope-a", (*cur)[:10]},
		"not base64":  {c, "scope-a", "!!!"},
		"other key":   {other, "scope-a", *cur},
		"huge":        {c, "scope-a", strings.Repeat("A", 5000)},
	} {
		if _, err := tc.c.Decode(ctx, tc.scope, tc.cursor); licadmin.ErrorCode(err) != licadmin.EINVALID {
			t.Errorf("%s: Decode error %v, want %s", name, err, licadmin.EINVALID)
		}
	}
}

// TestLimit ensures a listing's limit is optional (absent or empty, as
// `?limit=&cursor=` sends it), and that anything else but a whole number
// from 1 is refused as out_of_range on the limit field.
func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query map[string]string
		want  int
		code  string
	}{
		{"absent", nil, 0, ""},
		{"one", map[string]string{"limit": "1"}, 1, ""},
		{"large", map[string]string{"limit": "5000"}, 5000, ""},
		{"empty", map[string]string{"limit": ""}, 0, ""},
		{"zero", map[string]string{"limit": "0"}, 0, licadmin.EINVALID},
		{"negative", map[string]string{"limit": "-3"}, 0, licadmin.EINVALID},
		{"not a number", map[string]string{"limit": "ten"}, 0, licadmin.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&apigw.Request{Query: tc.query}).Limit()
			if got != tc.want || licadmin.ErrorCode(err) != tc.code {
				t.Fatalf("Limit() = %d, %v; want %d, %q", got, err, tc.want, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), "limit") {
				t.Fatalf("the error %q does not name the parameter", err)
			}
		})
	}
}

// TestListPage ensures a page lists from its cursor's position, hands out
// the next position sealed for the same scope (so a cursor of another
// listing or caller is refused), and answers an empty page as [] and no
// cursor.
func TestListPage(t *testing.T) {
	ctx := context.Background()
	c := &apigw.Cursors{Keys: fixedKey(strings.Repeat("k", 32))}
	list := func(after []byte) ([]string, []byte, error) {
		if after == nil {
			return []string{"a", "b"}, []byte("b"), nil
		}
		return nil, nil, nil
	}
	first, err := apigw.ListPage(ctx, c, &apigw.Request{}, "scope-a", list)
	if err != nil || len(first.Items) != 2 || first.NextCursor == nil {
		t.Fatalf("first page = %+v, %v", first, err)
	}
	next := &apigw.Request{Query: map[string]string{"cursor": *first.NextCursor}}
	last, err := apigw.ListPage(ctx, c, next, "scope-a", list)
	if err != nil || last.Items == nil || len(last.Items) != 0 || last.NextCursor != nil {
		t.Fatalf("last page = %+v, %v; want [] and no cursor", last, err)
	}
	if _, err := apigw.ListPage(ctx, c, next, "scope-b", list); licadmin.ErrorCode(err) != licadmin.EINVALID {
		t.Fatalf("a cursor in another scope: %v, want %s", err, licadmin.EINVALID)
	}
}

// TestOKEncoded ensures a page of items encoded already is answered with
// the bytes json.Marshal gives for the page of their values: an empty
// page, escaped characters, a next cursor or none.
func TestOKEncoded(t *testing.T) {
	type value struct {
		S string  `json:"s"`
		P *string `json:"p"`
	}
	cursor := "next<&>"
	for _, c := range []struct {
		name  string
		items []value
		next  *string
	}{
		{"empty", []value{}, nil},
		{"one", []value{{S: `a "<&>" \ é` + "\u2028"}}, &cursor},
		{"three", []value{{S: "a"}, {S: "b", P: &cursor}, {S: ""}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(apigw.Page[value]{Items: c.items, NextCursor: c.next})
			if err != nil {
				t.Fatal(err)
			}
			raws := []json.RawMessage{}
			for _, v := range c.items {
				b, _ := json.Marshal(v)
				raws = append(raws, b)
			}
			resp, err := apigw.OKEncoded(apigw.Page[json.RawMessage]{Items: raws, NextCursor: c.next})
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.Raw) != string(want) || resp.Status != 200 || resp.Headers["Content-Type"] != "application/json" {
				t.Fatalf("%d %v %s, want 200 application/json %s", resp.Status, resp.Headers, resp.Raw, want)
			}
		})
	}
}
