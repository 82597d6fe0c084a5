package tail_test

import (
	"fmt"
	"testing"

	"licenseadmin/infra/tail"
)

// TestBuffer ensures only the last Max bytes are kept, whatever the writes.
func TestBuffer(t *testing.T) {
	b := tail.New(5)
	for _, s := range []string{"ab", "cdef", "g"} {
		if n, err := fmt.Fprint(b, s); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "cdefg" {
		t.Fatalf("String() = %q, want %q", got, "cdefg")
	}
}
