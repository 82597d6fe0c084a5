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

// TestParseRefuses ensures the start-up check: a file, section or field
// missing or unknown, or an HTML part that ends inside a tag, stops
// NewRenderer.
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
		{"unknown field", edit(file, "{{.FirstName}}", "{{.Firstname}}"), "can't evaluate field Firstname"},
		{"layout field in a message", edit(file, "{{.FirstName}}", "{{.Content}}"), "can't evaluate field Content"},
		{"unknown layout field", edit("layout.html", "{{.Lang}}", "{{.Language}}"), "can't evaluate field Language"},
		{"unclosed action", edit(file, "-- footer --\n", "-- footer --\n{{if .Tier}}"), "unexpected EOF"},
		{"missing language", func(m fstest.MapFS) { delete(m, file) }, file},
		{"missing variant", func(m fstest.MapFS) { delete(m, "low_pool.empty.en.tmpl") }, "low_pool.empty.en.tmpl"},
		{"missing section", func(m fstest.MapFS) {
			s := string(m[file].Data)
			m[file] = &fstest.MapFile{Data: []byte(s[:strings.Index(s, "-- footer --")])}
		}, `has no "footer" section`},
		{"repeated section", edit(file, "-- footer --", "-- text --"), `repeated section "text"`},
		{"unknown section", edit(file, "-- footer --", "-- footnote --"), `unknown or repeated section "footnote"`},
		{"text before the sections", edit(file, "-- subject --", "Hi\n-- subject --"), "before the first section"},
		{"unclosed tag", edit(file, "\n-- footer --", "<p\n-- footer --"), "non-text context"},
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
