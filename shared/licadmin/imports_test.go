package licadmin_test

import (
	"testing"
	"unicode/utf8"

	"licenseadmin/shared/licadmin"
)

// TestClip ensures Clip bounds a string's bytes without splitting a
// character, and marks a cut.
func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 5, ""},
		{"abcde", 5, "abcde"},
		{"abcdef", 5, "ab…"},
		{"ééééé", 7, "éé…"},
		{"ééééé", 8, "éé…"},
		{"ééééé", 9, "ééé…"},
	} {
		got := licadmin.Clip(tc.in, tc.max)
		if got != tc.want || len(got) > max(tc.max, len(tc.in)) || !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
