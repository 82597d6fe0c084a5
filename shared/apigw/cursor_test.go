package apigw_test

import (
	"context"
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
