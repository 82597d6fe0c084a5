package email_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ses/types"
	"github.com/aws/smithy-go"

	"licenseadmin/shared/email"
	"licenseadmin/shared/licadmin"
)

// TestRenderEveryKind ensures every kind renders in every language with a
// one-line subject, a text part and an HTML part in that language, and
// that the language falls back to English.
func TestRenderEveryKind(t *testing.T) {
	r, err := email.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	d := email.Data{FirstName: "Zoé", Link: "https://admin.example.com/activate?token=abc", ExpiresAt: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC),
		Tier: licadmin.Advanced, Available: 2, Threshold: 3}
	for _, kind := range email.Kinds {
		for _, lang := range licadmin.Languages {
			m, err := r.Render(kind, lang, "zoe@example.com", d)
			if err != nil {
				t.Fatalf("%s %s: %v", kind, lang, err)
			}
			if m.To != "zoe@example.com" || m.Subject == "" || strings.Contains(m.Subject, "\n") || m.Tags["kind"] != string(kind) {
				t.Errorf("%s %s: %+v", kind, lang, m)
			}
			if !strings.Contains(m.Text, "Zoé") || !strings.Contains(m.HTML, "Zoé") || !strings.Contains(m.HTML, `<html lang="`+lang+`">`) {
				t.Errorf("%s %s: the parts lack the name or the language:\n%s\n%s", kind, lang, m.Text, m.HTML)
			}
		}
	}
	fr, _ := r.Render(licadmin.EmailActivation, "fr", "x@example.com", d)
	if !strings.Contains(fr.Text, "1 décembre 2026 à 09:30 UTC") || !strings.Contains(fr.HTML, `href="https://admin.example.com/activate?token=abc"`) {
		t.Errorf("French activation:\n%s\n%s", fr.Text, fr.HTML)
	}
	de, _ := r.Render(licadmin.EmailActivation, "de", "x@example.com", d)
	if de.Subject != "Activate your License Admin account" || !strings.Contains(de.Text, "December 1, 2026 at 09:30 UTC") {
		t.Errorf("unknown language: %q\n%s", de.Subject, de.Text)
	}
	if _, err := r.Render("nope", "en", "x@example.com", d); err == nil {
		t.Error("an unknown kind rendered")
	}
}

// TestRenderEscapes ensures values cannot inject markup into the HTML part
// (html/template escapes each for where it stands: text, attribute, URL),
// that only http(s) links reach an href, and that the plain-text parts
// show values as they are.
func TestRenderEscapes(t *testing.T) {
	r := email.MustRenderer()
	const name = `<script>alert(1)</script>" & 'x'`
	m, err := r.Render(licadmin.EmailLicenseAssigned, "en", "x@example.com", email.Data{FirstName: name, Tier: licadmin.Pro})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "Hello &lt;script&gt;alert(1)&lt;/script&gt;&#34; &amp; &#39;x&#39;,") {
		t.Errorf("HTML part not escaped:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, "Hello "+name+",") {
		t.Errorf("text part changed the name:\n%s", m.Text)
	}
	for _, c := range []struct{ link, href string }{
		{`javascript:alert(1)`, `href="#ZgotmplZ"`},
		{`data:text/html,<x>`, `href="#ZgotmplZ"`},
		{`https://a.example/a b/"><x>é?t=1&u=2`, `href="https://a.example/a%20b/%22%3e%3cx%3e%c3%a9?t=1&amp;u=2"`},
	} {
		m, err := r.Render(licadmin.EmailActivation, "en", "x@example.com", email.Data{FirstName: "A", Link: c.link})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(m.HTML, c.href) != 2 || strings.Contains(m.HTML, `<x>`) {
			t.Errorf("link %q: want %s twice in the HTML part:\n%s", c.link, c.href, m.HTML)
		}
	}
}

type netErr struct{}

func (*netErr) Error() string   { return "dial tcp 127.0.0.1:1: connect: connection refused" }
func (*netErr) Timeout() bool   { return false }
func (*netErr) Temporary() bool { return true }

// TestClassify ensures which send failures are retried: throttling and
// outages are, refusals are not.
func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want email.Class
	}{
		{"throttling", &smithy.GenericAPIError{Code: "Throttling", Message: "Maximum sending rate exceeded."}, email.Throttled},
		{"daily quota", &smithy.GenericAPIError{Code: "Throttling", Message: "Daily message quota exceeded."}, email.Throttled},
		{"message rejected", &types.MessageRejected{Message: aws.String("Email address is not verified.")}, email.Permanent},
		{"unverified MAIL FROM", &types.MailFromDomainNotVerifiedException{}, email.Permanent},
		{"unknown configuration set", &types.ConfigurationSetDoesNotExistException{}, email.Permanent},
		{"bad parameter", &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "Missing final '@domain'"}, email.Permanent},
		{"server error", &smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}, email.Retryable},
		{"network", &netErr{}, email.Retryable},
		{"deadline", context.DeadlineExceeded, email.Retryable},
	}
	for _, c := range cases {
		if got := email.Classify(c.err); got != c.want {
			t.Errorf("%s: class %d, want %d", c.name, got, c.want)
		}
	}
}
