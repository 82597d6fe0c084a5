package email

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"licenseadmin/shared/licadmin"
)

// TestLowPoolWording ensures the low-pool alert picks its wording from
// the count in Go: none left for 0, the singular for 1, the plural above,
// in every language.
func TestLowPoolWording(t *testing.T) {
	r := MustRenderer()
	cases := []struct {
		lang      string
		available int64
		subject   string
		text      string
		html      string
	}{
		{"en", 0, "No Pro licenses left", "has no Pro license left to assign.", "<strong>no Pro license</strong>"},
		{"en", 1, "Pro licenses are running low", "has only 1 Pro license left to assign,\nat or below its alert threshold of 5.", "<strong>1 Pro license</strong>"},
		{"en", 2, "Pro licenses are running low", "has only 2 Pro licenses left to assign,\nat or below its alert threshold of 5.", "<strong>2 Pro licenses</strong>"},
		{"fr", 0, "Plus aucune licence Pro", "aucune licence Pro à attribuer.", "<strong>aucune licence Pro</strong>"},
		{"fr", 1, "Il reste peu de licences Pro", "que 1 licence Pro à attribuer,\nsoit son seuil d'alerte de 5, ou moins.", "<strong>1 licence Pro</strong>"},
		{"fr", 2, "Il reste peu de licences Pro", "que 2 licences Pro à attribuer,\nsoit son seuil d'alerte de 5, ou moins.", "<strong>2 licences Pro</strong>"},
	}
	for _, c := range cases {
		m, err := r.Render(licadmin.EmailLowPool, c.lang, "x@example.com", Data{FirstName: "A", Tier: licadmin.Pro, Available: c.available, Threshold: 5})
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != c.subject || !strings.Contains(m.Text, c.text) || !strings.Contains(m.HTML, c.html) || !strings.Contains(m.HTML, "<title>"+c.subject+"</title>") {
			t.Errorf("%s, %d available: %q\n%s\n%s", c.lang, c.available, m.Subject, m.Text, m.HTML)
		}
	}
}

// TestParseRefuses ensures the start-up check: a file, section or
// placeholder missing or unknown, or a placeholder where escaping does
// not make its value safe, stops NewRenderer.
func TestParseRefuses(t *testing.T) {
	base := fstest.MapFS{}
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(path)
		base[strings.TrimPrefix(path, "templates/")] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseTemplates(base); err != nil {
		t.Fatalf("the embedded templates: %v", err)
	}
	const file = "license_assigned.fr.tmpl"
	edit := func(name, old, new string) func(fstest.MapFS) {
		return func(m fstest.MapFS) {
			m[name] = &fstest.MapFile{Data: []byte(strings.Replace(string(m[name].Data), old, new, 1))}
		}
	}
	cases := []struct {
		name   string
		change func(fstest.MapFS)
		want   string
	}{
		{"unknown placeholder", edit(file, "{{FirstName}}", "{{Firstname}}"), "unknown placeholder {{Firstname}}"},
		{"layout placeholder in a message", edit(file, "{{FirstName}}", "{{Content}}"), "unknown placeholder {{Content}}"},
		{"unknown layout placeholder", edit("layout.html", "{{Lang}}", "{{Language}}"), "unknown placeholder {{Language}}"},
		{"unclosed placeholder", edit(file, "-- footer --\n", "-- footer --\n{{Tier"), "unclosed"},
		{"missing language", func(m fstest.MapFS) { delete(m, file) }, file},
		{"missing variant", func(m fstest.MapFS) { delete(m, "low_pool.empty.en.tmpl") }, "low_pool.empty.en.tmpl"},
		{"missing section", func(m fstest.MapFS) {
			s := string(m[file].Data)
			m[file] = &fstest.MapFile{Data: []byte(s[:strings.Index(s, "-- footer --")])}
		}, `has no "footer" section`},
		{"repeated section", edit(file, "-- footer --", "-- text --"), `repeated section "text"`},
		{"unknown section", edit(file, "-- footer --", "-- footnote --"), `unknown or repeated section "footnote"`},
		{"text before the sections", edit(file, "-- subject --", "Hi\n-- subject --"), "before the first section"},
		{"style attribute", edit(file, `<h1 style="`, `<h1 style="{{Tier}}`), `in attribute "style"`},
		{"part of a value", edit(file, `<h1 `, `<h1 title="{{Tier}} x" `), "must be in text or the whole value"},
		{"end of a value", edit(file, `<h1 `, `<h1 title="x {{Tier}}" `), "not at the start of a double-quoted attribute value"},
		{"event handler", edit(file, `<h1 `, `<h1 onclick="{{Tier}}" `), `in attribute "onclick"`},
		{"unquoted attribute", edit(file, `<h1 `, `<h1 title={{Tier}} `), "inside a tag"},
		{"script", edit(file, `<h1 `, `<script>var t = "{{Tier}}";</script><h1 `), "inside <script"},
		{"comment", edit(file, `<h1 `, `<!-- {{Tier}} --><h1 `), "inside <!--"},
		{"unclosed tag", edit(file, "\n-- footer --", "<p\n-- footer --"), "ends inside a tag"},
		{"rendered HTML in an attribute", edit("layout.html", `lang="{{Lang}}"`, `lang="{{Content}}"`), "must be in text"},
	}
	for _, c := range cases {
		m := fstest.MapFS{}
		for k, v := range base {
			m[k] = v
		}
		c.change(m)
		_, err := parseTemplates(m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// TestSafeURL ensures only http(s) links reach an href, normalized as
// html/template did.
func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example/x?t=1&u=2": "https://a.example/x?t=1&u=2",
		"HTTP://a.example/a b/é":      "HTTP://a.example/a%20b/%c3%a9",
		`https://a.example/"><x>`:     "https://a.example/%22%3e%3cx%3e",
		"javascript:alert(1)":         "about:invalid#zlinkz",
		"data:text/html,<x>":          "about:invalid#zlinkz",
		" https://a.example/":         "about:invalid#zlinkz",
		"//a.example/":                "about:invalid#zlinkz",
	} {
		if got := safeURL(in); got != want {
			t.Errorf("safeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
