package email

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"licenseadmin/shared/licadmin"
)

//go:embed templates
var templateFS embed.FS

// Data is what a message's templates may show. Each kind uses its part:
// the activation link and its expiry, the tier of an assigned license, the
// figures of a low-pool alert.
type Data struct {
	FirstName string
	Link      string
	ExpiresAt time.Time
	Tier      licadmin.Tier
	Available int64
	Threshold int64
}

// Kinds lists every email kind; each has, per language L of
// licadmin.Languages, the files templates/<kind>.<L>.txt (the "subject" and
// "text" templates) and templates/<kind>.<L>.html (its "content" and
// "footer", inside layout.html).
var Kinds = []licadmin.EmailKind{licadmin.EmailActivation, licadmin.EmailLicenseAssigned, licadmin.EmailLowPool}

type parts struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// Renderer renders messages from the embedded templates.
type Renderer struct {
	set map[string]parts
}

// NewRenderer parses every template. It fails when a kind lacks a
// language or a template does not parse.
func NewRenderer() (*Renderer, error) {
	r := &Renderer{set: map[string]parts{}}
	for _, kind := range Kinds {
		for _, lang := range licadmin.Languages {
			name := string(kind) + "." + lang
			funcs := funcsFor(lang)
			text, err := texttemplate.New(name).Funcs(funcs).Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".txt")
			if err != nil {
				return nil, fmt.Errorf("email templates: %w", err)
			}
			html, err := htmltemplate.New(name).Funcs(htmltemplate.FuncMap(funcs)).Option("missingkey=error").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
			if err != nil {
				return nil, fmt.Errorf("email templates: %w", err)
			}
			for _, t := range []string{"subject", "text"} {
				if text.Lookup(t) == nil {
					return nil, fmt.Errorf("email templates: %s.txt defines no %q", name, t)
				}
			}
			for _, t := range []string{"layout", "content", "footer"} {
				if html.Lookup(t) == nil {
					return nil, fmt.Errorf("email templates: %s.html defines no %q", name, t)
				}
			}
			r.set[name] = parts{text: text, html: html}
		}
	}
	return r, nil
}

// MustRenderer is NewRenderer for package-level wiring: the templates are
// part of the binary, so a failure is a build defect.
func MustRenderer() *Renderer {
	r, err := NewRenderer()
	if err != nil {
		panic(err)
	}
	return r
}

// Render returns the message of kind for a recipient at to in lang (the
// default language when there are no templates in lang).
func (r *Renderer) Render(kind licadmin.EmailKind, lang, to string, d Data) (Message, error) {
	lang = licadmin.Language(lang)
	p, ok := r.set[string(kind)+"."+lang]
	if !ok {
		return Message{}, fmt.Errorf("render email: no templates for kind %q", kind)
	}
	var subject, text, html bytes.Buffer
	if err := p.text.ExecuteTemplate(&subject, "subject", d); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", kind, err)
	}
	if err := p.text.ExecuteTemplate(&text, "text", d); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", kind, err)
	}
	m := Message{
		To: to,
		// A subject is one line, whatever a value in it holds.
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text:    strings.TrimSpace(text.String()) + "\n",
		Tags:    map[string]string{"kind": string(kind), "language": lang},
	}
	if err := p.html.ExecuteTemplate(&html, "layout", htmlData{Data: d, Lang: lang, Subject: m.Subject}); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", kind, err)
	}
	m.HTML = html.String()
	return m, nil
}

// htmlData adds what the layout needs to a message's data.
type htmlData struct {
	Data
	Lang    string
	Subject string
}

var tierLabels = map[string]map[licadmin.Tier]string{
	"en": {licadmin.Eco: "Eco", licadmin.Advanced: "Advanced", licadmin.Pro: "Pro"},
	"fr": {licadmin.Eco: "Éco", licadmin.Advanced: "Avancée", licadmin.Pro: "Pro"},
}

var frMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

// funcsFor returns the template functions of a language: tier names a
// tier, date writes a time (UTC) as people of that language do.
func funcsFor(lang string) texttemplate.FuncMap {
	return texttemplate.FuncMap{
		"tier": func(t licadmin.Tier) string {
			if l, ok := tierLabels[lang][t]; ok {
				return l
			}
			return string(t)
		},
		"date": func(t time.Time) string {
			t = t.UTC()
			if lang == "fr" {
				return fmt.Sprintf("%d %s %d à %s UTC", t.Day(), frMonths[t.Month()-1], t.Year(), t.Format("15:04"))
			}
			return t.Format("January 2, 2006 at 15:04 UTC")
		},
	}
}
