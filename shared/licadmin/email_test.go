package licadmin_test

import (
	"testing"

	"licenseadmin/shared/licadmin"
)

// TestParseEmailCanonical ensures every spelling of one mailbox parses to
// one canonical form (lower case, punycode domain), the form claims,
// approvals and comparisons use, and that addresses whose domain is no
// valid host name are refused.
func TestParseEmailCanonical(t *testing.T) {
	tests := []struct {
		in, email, domain string
	}{
		{" Jane@Example.COM ", "jane@example.com", "example.com"},
		{"jane@exämple.com", "jane@xn--exmple-cua.com", "xn--exmple-cua.com"},
		{"JANE@EXÄMPLE.COM", "jane@xn--exmple-cua.com", "xn--exmple-cua.com"},
		{"jane@xn--exmple-cua.com", "jane@xn--exmple-cua.com", "xn--exmple-cua.com"},
		{"jané@bücher.example", "jané@xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"a@b.test", "a@b.test", "b.test"},
		{"not-an-email", "", ""},
		{"a@localhost", "", ""},
		{"a@exa_mple.com", "", ""},
		{"a@-bad.com", "", ""},
		{"a@example..com", "", ""},
		{"a@.example.com", "", ""},
		{"a@1.2.3.4", "", ""},
		{"Jane <jane@example.com>", "", ""},
	}
	for _, tt := range tests {
		email, domain, err := licadmin.ParseEmail("email", tt.in)
		if tt.email == "" {
			if err == nil {
				t.Errorf("ParseEmail(%q) = %q, want an error", tt.in, email)
			}
			continue
		}
		if err != nil || email != tt.email || domain != tt.domain {
			t.Errorf("ParseEmail(%q) = %q, %q, %v; want %q, %q", tt.in, email, domain, err, tt.email, tt.domain)
		}
		if n := licadmin.NormalizeEmail(tt.in); n != tt.email {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.in, n, tt.email)
		}
	}
}
