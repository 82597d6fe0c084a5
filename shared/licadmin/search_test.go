package licadmin_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"licenseadmin/shared/licadmin"
)

// TestSearchKey ensures searches ignore case and accents: the examples of
// the API's documentation fold as documented.
func TestSearchKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Jane", "jane"},
		{"dö", "do"},
		{"Doe", "doe"},
		{"Élodie", "elodie"},
		{"ÉLODIE", "elodie"},
		{"François", "francois"},
		{"Straße", "strasse"},
		{"Søren Ærø", "soren aero"},
		{"Łukasz", "lukasz"},
		{"  Mary \t Ann ", "mary ann"},
		{"Jan.K@Example.COM", "jan.k@example.com"},
		{"ﬁona", "fiona"}, // compatibility ligature
		{"a\u0000b", "ab"},
		{"\u0301", ""}, // a lone combining mark folds to nothing
		{"", ""},
	} {
		if got := licadmin.SearchKey(c.in); got != c.want {
			t.Errorf("SearchKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSearchKeyBounded ensures a folded key never outgrows
// MaxSearchKeyBytes, however much its text expands, and is cut on a
// character boundary, without a trailing space, as a prefix of the whole
// fold, so that a search text cut the same way still finds it.
func TestSearchKeyBounded(t *testing.T) {
	const bound = licadmin.MaxSearchKeyBytes
	phrase := licadmin.SearchKey("\uFDFA") // one character, folded to a whole phrase
	for _, c := range []struct{ name, in, whole string }{
		{"expanding ligatures", strings.Repeat("\uFDFA", licadmin.MaxSearchLength), strings.Repeat(phrase, licadmin.MaxSearchLength)},
		{"two-byte letters", strings.Repeat("ж", 300), strings.Repeat("ж", 300)},
		{"a letter across the bound", strings.Repeat("a", bound-1) + "ж", strings.Repeat("a", bound-1) + "ж"},
		{"a space at the bound", strings.Repeat("a", bound-1) + " b", strings.Repeat("a", bound-1) + " b"},
	} {
		key := licadmin.SearchKey(c.in)
		if len(key) > bound || len(key) < bound-len(phrase) || !utf8.ValidString(key) || strings.HasSuffix(key, " ") || !strings.HasPrefix(c.whole, key) {
			t.Errorf("%s: key of %d bytes (valid %v) %.40q..., want at most %d, whole characters, no trailing space, a prefix of the whole fold",
				c.name, len(key), utf8.ValidString(key), key, bound)
		}
	}
}
