package email

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"licenseadmin/shared/licadmin"
)

// templateFS holds the templates: the subject and text parts are
// text/template, the HTML parts html/template, which escapes each value
// for where it stands (text, attribute, URL) and refuses links that are
// not http(s).
//
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
	// Import is the ended import of an import_ended email.
	Import ImportFigures
}

// ImportFigures are what an import_ended email tells of an import.
type ImportFigures struct {
	ID, FileName, Status              string
	Rows, Created, Failed, Unlicensed int64
}

// Kinds lists every email kind, so that NewRenderer can check at start-up
// that each has its wording in every language. Per language L of
// licadmin.Languages, a kind has the file templates/<kind>.<L>.tmpl, and,
// per variant V of a kind (low_pool's "empty", when no license is left),
// templates/<kind>.<V>.<L>.tmpl. Such a file has four sections, each
// starting at a line "-- <name> --": "subject" and "text", the plain-text
// parts (text/template), and "content" and "footer", HTML fragments
// (html/template) that templates/layout.html wraps. A section holds the
// lines up to the next one (the newline ending its last line is not part
// of it) and may show the fields of values: {{.FirstName}}, {{.Link}},
// {{.ExpiresAt}} (a date in the language's style), {{.Tier}} (the tier's
// name in the language), {{.Available}}, {{.Threshold}} and {{.Licenses}}
// (the word "license" in the language, plural or not for Available), and
// an ended import's {{.ImportID}}, {{.FileName}}, {{.Rows}}, {{.Created}},
// {{.Failed}} and {{.Unlicensed}}. The layout shows those of page:
// {{.Lang}}, {{.Subject}}, {{.Content}} and {{.Footer}}.
var Kinds = []licadmin.EmailKind{licadmin.EmailActivation, licadmin.EmailLicenseAssigned, licadmin.EmailLowPool, licadmin.EmailImportEnded}

// variants are the other wordings of a kind, chosen by variantOf: each is
// a file of its own rather than a conditional in the templates.
var variants = map[licadmin.EmailKind][]string{
	licadmin.EmailLowPool:     {"empty"},
	licadmin.EmailImportEnded: {"failed"},
}

// variantOf returns the variant of kind that d calls for ("" for the
// kind's main wording).
func variantOf(kind licadmin.EmailKind, d Data) string {
	if kind == licadmin.EmailLowPool && d.Available == 0 {
		return "empty"
	}
	if kind == licadmin.EmailImportEnded && d.Import.Status == string(licadmin.ImportFailed) {
		return "failed"
	}
	return ""
}

// sections are the parts of a message file, in message's field order.
var sections = []string{"subject", "text", "content", "footer"}

// page is what the layout shows: the message's HTML parts, already
// rendered (and escaped) by html/template, in the page of its language.
type page struct {
	Lang, Subject   string
	Content, Footer htmltemplate.HTML
}

// message is the parsed file of one kind, variant and language.
type message struct {
	subject, text   *texttemplate.Template
	content, footer *htmltemplate.Template
}

// Renderer renders messages from the embedded templates, parsed and
// checked once by NewRenderer.
type Renderer struct {
	layout *htmltemplate.Template
	set    map[string]message // by file name without .tmpl
}

// NewRenderer parses every template, so that a defect in one stops the
// function at start-up rather than a message later. It fails when a kind
// lacks a language, a variant or a section, when a template does not
// parse or shows a field that does not exist, or when a language lacks
// its tier names, date style or plural of "license".
func NewRenderer() (*Renderer, error) {
	sub, err := fs.Sub(templateFS, "templates")
	if err != nil {
		return nil, fmt.Errorf("email templates: %w", err)
	}
	return parseTemplates(sub)
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
	name := fileName(kind, variantOf(kind, d), lang)
	p, ok := r.set[name]
	if !ok {
		return Message{}, fmt.Errorf("render email: no templates for kind %q", kind)
	}
	m, err := p.render(r.layout, lang, values(lang, d))
	if err != nil {
		return Message{}, fmt.Errorf("render email %s: %w", name, err)
	}
	m.To = to
	m.Tags = map[string]string{"kind": string(kind), "language": lang}
	return m, nil
}

// render executes the message's templates and the layout with v.
func (p message) render(layout *htmltemplate.Template, lang string, v fields) (Message, error) {
	var subject, text, content, footer, html strings.Builder
	for _, err := range []error{
		p.subject.Execute(&subject, v),
		p.text.Execute(&text, v),
		p.content.Execute(&content, v),
		p.footer.Execute(&footer, v),
	} {
		if err != nil {
			return Message{}, err
		}
	}
	m := Message{
		// A subject is one line, whatever a value in it holds.
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text:    strings.TrimSpace(text.String()) + "\n",
	}
	pg := page{Lang: lang, Subject: m.Subject, Content: htmltemplate.HTML(content.String()), Footer: htmltemplate.HTML(footer.String())}
	if err := layout.Execute(&html, pg); err != nil {
		return Message{}, err
	}
	m.HTML = html.String()
	return m, nil
}

// parseTemplates parses layout.html and every message file of fsys, and
// renders each once in each language, so that a template showing a field
// that does not exist fails here.
func parseTemplates(fsys fs.FS) (*Renderer, error) {
	for _, lang := range licadmin.Languages {
		if tierLabels[lang] == nil || dateFormats[lang] == nil || licenseWords[lang] == nil {
			return nil, fmt.Errorf("email templates: no tier names, date style or plural of license for language %q", lang)
		}
	}
	src, err := fs.ReadFile(fsys, "layout.html")
	if err != nil {
		return nil, fmt.Errorf("email templates: %w", err)
	}
	layout, err := htmltemplate.New("layout.html").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("email templates: %w", err)
	}
	r := &Renderer{layout: layout, set: map[string]message{}}
	sample := Data{FirstName: "A", Link: "https://example.com/activate?token=t", ExpiresAt: time.Unix(0, 0), Tier: licadmin.Pro, Available: 1, Threshold: 1}
	for _, kind := range Kinds {
		for _, variant := range append([]string{""}, variants[kind]...) {
			for _, lang := range licadmin.Languages {
				name := fileName(kind, variant, lang)
				m, err := parseMessage(fsys, name)
				if err != nil {
					return nil, err
				}
				if _, err := m.render(layout, lang, values(lang, sample)); err != nil {
					return nil, fmt.Errorf("email templates: %s: %w", name, err)
				}
				r.set[name] = m
			}
		}
	}
	return r, nil
}

// fileName is the name, without .tmpl, of the file of kind in variant and
// lang.
func fileName(kind licadmin.EmailKind, variant, lang string) string {
	if variant == "" {
		return string(kind) + "." + lang
	}
	return string(kind) + "." + variant + "." + lang
}

// parseMessage parses the file name.tmpl of fsys.
func parseMessage(fsys fs.FS, name string) (message, error) {
	file := name + ".tmpl"
	src, err := fs.ReadFile(fsys, file)
	if err != nil {
		return message{}, fmt.Errorf("email templates: %w", err)
	}
	secs, err := splitSections(file, string(src))
	if err != nil {
		return message{}, err
	}
	for _, s := range sections {
		if _, ok := secs[s]; !ok {
			return message{}, fmt.Errorf("email templates: %s has no %q section", file, s)
		}
	}
	var m message
	var errs [4]error
	m.subject, errs[0] = texttemplate.New(file + " subject").Parse(secs["subject"])
	m.text, errs[1] = texttemplate.New(file + " text").Parse(secs["text"])
	m.content, errs[2] = htmltemplate.New(file + " content").Parse(secs["content"])
	m.footer, errs[3] = htmltemplate.New(file + " footer").Parse(secs["footer"])
	if err := errors.Join(errs[:]...); err != nil {
		return message{}, fmt.Errorf("email templates: %w", err)
	}
	return m, nil
}

// splitSections returns the sections of a message file by name.
func splitSections(file, src string) (map[string]string, error) {
	secs := map[string]string{}
	var cur string
	var body []string
	for i, line := range strings.Split(strings.TrimSuffix(src, "\n"), "\n") {
		if name, ok := strings.CutPrefix(line, "-- "); ok && strings.HasSuffix(name, " --") {
			if cur != "" {
				secs[cur] = strings.Join(body, "\n")
			}
			cur, body = strings.TrimSuffix(name, " --"), nil
			_, dup := secs[cur]
			if dup || !slices.Contains(sections, cur) {
				return nil, fmt.Errorf("email templates: %s:%d: unknown or repeated section %q", file, i+1, cur)
			}
			continue
		}
		if cur == "" {
			return nil, fmt.Errorf("email templates: %s:%d: text before the first section", file, i+1)
		}
		body = append(body, line)
	}
	if cur != "" {
		secs[cur] = strings.Join(body, "\n")
	}
	return secs, nil
}

// fields are the values a message's sections may show, written in the
// message's language.
type fields struct {
	FirstName, Link, ExpiresAt, Tier, Available, Threshold, Licenses string
	ImportID, FileName, Rows, Created, Failed, Unlicensed            string
}

// values are the fields of a message's sections for d in lang.
func values(lang string, d Data) fields {
	tier, ok := tierLabels[lang][d.Tier]
	if !ok {
		tier = string(d.Tier)
	}
	return fields{
		FirstName:  d.FirstName,
		Link:       d.Link,
		ExpiresAt:  dateFormats[lang](d.ExpiresAt),
		Tier:       tier,
		Available:  strconv.FormatInt(d.Available, 10),
		Threshold:  strconv.FormatInt(d.Threshold, 10),
		Licenses:   licenseWords[lang](d.Available),
		ImportID:   d.Import.ID,
		FileName:   d.Import.FileName,
		Rows:       strconv.FormatInt(d.Import.Rows, 10),
		Created:    strconv.FormatInt(d.Import.Created, 10),
		Failed:     strconv.FormatInt(d.Import.Failed, 10),
		Unlicensed: strconv.FormatInt(d.Import.Unlicensed, 10),
	}
}

// tierLabels name the tiers in each language.
var tierLabels = map[string]map[licadmin.Tier]string{
	"en": {licadmin.Eco: "Eco", licadmin.Advanced: "Advanced", licadmin.Pro: "Pro"},
	"fr": {licadmin.Eco: "Éco", licadmin.Advanced: "Avancée", licadmin.Pro: "Pro"},
}

var frMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

// dateFormats write a time (UTC) as people of each language do.
var dateFormats = map[string]func(time.Time) string{
	"en": func(t time.Time) string {
		return t.UTC().Format("January 2, 2006 at 15:04 UTC")
	},
	"fr": func(t time.Time) string {
		t = t.UTC()
		return fmt.Sprintf("%d %s %d à %s UTC", t.Day(), frMonths[t.Month()-1], t.Year(), t.Format("15:04"))
	},
}

// licenseWords write "license" in each language, in the plural or not for
// n: English takes the plural but for one, French only above one.
var licenseWords = map[string]func(n int64) string{
	"en": func(n int64) string {
		if n == 1 {
			return "license"
		}
		return "licenses"
	},
	"fr": func(n int64) string {
		if n > 1 {
			return "licences"
		}
		return "licence"
	},
}
