package licadmin_test

import (
	"testing"

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
