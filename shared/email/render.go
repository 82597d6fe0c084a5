package email

import (
	"embed"
	"fmt"
	"html"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"licenseadmin/shared/licadmin"
)

// templateFS holds the templates: plain files with named placeholders
// that Go fills in (see Kinds), not text/template or html/template, whose
// execution goes through reflect.Value.MethodByName and so makes the
// linker keep every exported method of every type in the binary (the
// whole AWS SDK clients of the functions that send mail), well over the
// Lambda size budget.
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
// parts, and "content" and "footer", HTML fragments that
// templates/layout.html wraps. A section holds the lines up to the next
// one (the newline ending its last line is not part of it) and may name
// the placeholders {{FirstName}}, {{Link}}, {{ExpiresAt}} (a date in the
// language's style), {{Tier}} (the tier's name in the language),
// {{Available}}, {{Threshold}} and {{Licenses}} (the word "license" in the
// language, plural or not for Available), and an ended import's
// {{ImportID}}, {{FileName}}, {{Rows}}, {{Created}}, {{Failed}} and
// {{Unlicensed}}. The layout's placeholders are
// {{Lang}}, {{Subject}}, {{Content}} and {{Footer}}.
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

// layoutFields are the layout's placeholders; true marks HTML already
// rendered, inserted as it is.
var layoutFields = map[string]bool{"Lang": false, "Subject": false, "Content": true, "Footer": true}

// escaping is how a placeholder's value is written.
type escaping int

const (
	asIs    escaping = iota // plain text, or HTML already rendered
	escHTML                 // HTML-escaped, in text or a quoted attribute
	escURL                  // in a URL attribute: http(s) only, normalized, escaped
)

// chunk is a piece of a template: literal text, or the placeholder name.
type chunk struct {
	text string
	name string
	esc  escaping
}

// tmpl is a parsed template section.
type tmpl []chunk

// execute returns t with the placeholders replaced by vals.
func (t tmpl) execute(vals map[string]string) string {
	var b strings.Builder
	for _, c := range t {
		switch {
		case c.name == "":
			b.WriteString(c.text)
		case c.esc == escHTML:
			b.WriteString(html.EscapeString(vals[c.name]))
		case c.esc == escURL:
			b.WriteString(html.EscapeString(safeURL(vals[c.name])))
		default:
			b.WriteString(vals[c.name])
		}
	}
	return b.String()
}

// message is the parsed file of one kind, variant and language.
type message struct {
	subject, text, content, footer tmpl
}

// Renderer renders messages from the embedded templates, parsed and
// checked once by NewRenderer.
type Renderer struct {
	layout tmpl
	set    map[string]message // by file name without .tmpl
}

// NewRenderer parses every template, so that a defect in one stops the
// function at start-up rather than a message later. It fails when a kind
// lacks a language, a variant or a section, when a placeholder is unknown
// or stands where escaping cannot make it safe, or when a language lacks
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
	p, ok := r.set[fileName(kind, variantOf(kind, d), lang)]
	if !ok {
		return Message{}, fmt.Errorf("render email: no templates for kind %q", kind)
	}
	vals := values(lang, d)
	m := Message{
		To: to,
		// A subject is one line, whatever a value in it holds.
		Subject: strings.Join(strings.Fields(p.subject.execute(vals)), " "),
		Text:    strings.TrimSpace(p.text.execute(vals)) + "\n",
		Tags:    map[string]string{"kind": string(kind), "language": lang},
	}
	m.HTML = r.layout.execute(map[string]string{
		"Lang":    lang,
		"Subject": m.Subject,
		"Content": p.content.execute(vals),
		"Footer":  p.footer.execute(vals),
	})
	return m, nil
}

// parseTemplates parses layout.html and every message file of fsys.
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
	layout, err := parse("layout.html", string(src), layoutFields, true)
	if err != nil {
		return nil, err
	}
	r := &Renderer{layout: layout, set: map[string]message{}}
	fields := map[string]bool{}
	for name := range values(licadmin.Languages[0], Data{}) {
		fields[name] = false
	}
	for _, kind := range Kinds {
		for _, variant := range append([]string{""}, variants[kind]...) {
			for _, lang := range licadmin.Languages {
				name := fileName(kind, variant, lang)
				m, err := parseMessage(fsys, name, fields)
				if err != nil {
					return nil, err
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

// parseMessage parses the file name.tmpl of fsys, whose placeholders may
// be fields.
func parseMessage(fsys fs.FS, name string, fields map[string]bool) (message, error) {
	file := name + ".tmpl"
	src, err := fs.ReadFile(fsys, file)
	if err != nil {
		return message{}, fmt.Errorf("email templates: %w", err)
	}
	secs, err := splitSections(file, string(src))
	if err != nil {
		return message{}, err
	}
	var parsed [4]tmpl
	for i, s := range sections {
		body, ok := secs[s]
		if !ok {
			return message{}, fmt.Errorf("email templates: %s has no %q section", file, s)
		}
		isHTML := s == "content" || s == "footer"
		if parsed[i], err = parse(file+" "+s, body, fields, isHTML); err != nil {
			return message{}, err
		}
	}
	return message{subject: parsed[0], text: parsed[1], content: parsed[2], footer: parsed[3]}, nil
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

// parse splits src into literals and placeholders, each of which must be
// in fields (true for HTML already rendered). In HTML, a placeholder must
// stand in text or be the whole value of a double-quoted attribute (not
// an event handler nor a style), the only places where escaping its value
// makes it safe; in href, src and action it is a URL, refused unless http
// or https. HTML already rendered must stand in text, and an HTML
// section must end in text, outside any tag, comment, script or style.
func parse(name, src string, fields map[string]bool, isHTML bool) (tmpl, error) {
	var t tmpl
	var literal strings.Builder // the literal text so far, for the HTML context
	for src != "" {
		i := strings.Index(src, "{{")
		if i < 0 {
			i = len(src)
		}
		if i > 0 {
			t = append(t, chunk{text: src[:i]})
			literal.WriteString(src[:i])
			src = src[i:]
			continue
		}
		j := strings.Index(src, "}}")
		if j < 0 {
			return nil, fmt.Errorf("email templates: %s: unclosed {{", name)
		}
		field := src[2:j]
		rendered, ok := fields[field]
		if !ok {
			return nil, fmt.Errorf("email templates: %s: unknown placeholder {{%s}}", name, field)
		}
		src = src[j+2:]
		c := chunk{name: field, esc: asIs}
		if isHTML {
			attr, err := htmlContext(literal.String())
			switch {
			case err != nil:
				return nil, fmt.Errorf("email templates: %s: {{%s}} %v", name, field, err)
			case attr != "" && (rendered || !strings.HasPrefix(src, `"`)):
				return nil, fmt.Errorf("email templates: %s: {{%s}} must be in text or the whole value of a double-quoted attribute", name, field)
			case attr == "href" || attr == "src" || attr == "action":
				c.esc = escURL
			case !rendered:
				c.esc = escHTML
			}
		}
		t = append(t, c)
	}
	if isHTML {
		if attr, err := htmlContext(literal.String()); err != nil || attr != "" {
			return nil, fmt.Errorf("email templates: %s: ends inside a tag, comment, script or style", name)
		}
	}
	return t, nil
}

// htmlContext tells where text written after the HTML before lands: in
// text (attr ""), or at the start of the double-quoted value of attribute
// attr. Anywhere else (inside a tag elsewhere, in an event handler or a
// style, in a comment, a script or a style element) is an error: escaping
// does not make a value safe there.
func htmlContext(before string) (attr string, err error) {
	lower := strings.ToLower(before)
	for _, el := range [][2]string{{"<!--", "-->"}, {"<script", "</script"}, {"<style", "</style"}} {
		if i := strings.LastIndex(lower, el[0]); i >= 0 && strings.LastIndex(lower, el[1]) < i {
			return "", fmt.Errorf("is inside %s", el[0])
		}
	}
	lt, gt := strings.LastIndex(lower, "<"), strings.LastIndex(lower, ">")
	if lt <= gt {
		return "", nil
	}
	tag := lower[lt:]
	if !strings.HasSuffix(tag, `="`) || strings.Count(tag, `"`)%2 != 1 {
		return "", fmt.Errorf("is inside a tag, not at the start of a double-quoted attribute value")
	}
	attr = tag[strings.LastIndexAny(tag, " \t\n")+1 : len(tag)-2]
	if attr == "" || strings.HasPrefix(attr, "on") || attr == "style" || attr == "srcdoc" {
		return "", fmt.Errorf("is in attribute %q", attr)
	}
	return attr, nil
}

// safeURL returns u if it is an http or https URL, else an inert URL (as
// html/template did with #ZgotmplZ), so that a javascript: or data: link
// never reaches an href. Like html/template, it percent-encodes the bytes
// a URL may not hold as they are (spaces, quotes, non-ASCII).
func safeURL(u string) string {
	lower := strings.ToLower(u)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return "about:invalid#zlinkz"
	}
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		c := u[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&*+,-./:;=?@[]_~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// values are the placeholders of a message's sections for d in lang.
func values(lang string, d Data) map[string]string {
	tier, ok := tierLabels[lang][d.Tier]
	if !ok {
		tier = string(d.Tier)
	}
	return map[string]string{
		"FirstName":  d.FirstName,
		"Link":       d.Link,
		"ExpiresAt":  dateFormats[lang](d.ExpiresAt),
		"Tier":       tier,
		"Available":  strconv.FormatInt(d.Available, 10),
		"Threshold":  strconv.FormatInt(d.Threshold, 10),
		"Licenses":   licenseWords[lang](d.Available),
		"ImportID":   d.Import.ID,
		"FileName":   d.Import.FileName,
		"Rows":       strconv.FormatInt(d.Import.Rows, 10),
		"Created":    strconv.FormatInt(d.Import.Created, 10),
		"Failed":     strconv.FormatInt(d.Import.Failed, 10),
		"Unlicensed": strconv.FormatInt(d.Import.Unlicensed, 10),
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
