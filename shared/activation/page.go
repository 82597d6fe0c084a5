package activation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"
)

// The activation page is self-contained: one inline style and one inline
// script, allowed by their hashes in the Content-Security-Policy, and
// nothing else loaded. Its button POSTs the token to /v1/activations
// (relative to the page, so that a path prefix in the public URL works);
// loading the page changes nothing.

const pageStyle = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;background:#f4f5f7;color:#1f2933;margin:0;line-height:1.5}
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin:0 0 1rem}
section+section{margin-top:1.5rem;padding-top:1.5rem;border-top:1px solid #e4e7eb}
button{font:inherit;font-weight:600;color:#fff;background:#1d4ed8;border:0;border-radius:.375rem;padding:.75rem 1.25rem;cursor:pointer;margin-top:1.5rem}
button:focus-visible,.msg:focus{outline:3px solid #93c5fd;outline-offset:2px}
button:disabled{opacity:.6;cursor:progress}
.msg{margin-top:1.5rem;padding:1rem;border-radius:.375rem}
.msg p{margin:0}.msg p+p{margin-top:.5rem}
#success{background:#e3f9e5;color:#05400a}
#invalid,#error{background:#ffe3e3;color:#610404}
[hidden]{display:none!important}
`

const pageScript = `
(function () {
  var form = document.getElementById("activate");
  var button = document.getElementById("activate-button");
  function show(id) {
    ["success", "invalid", "error"].forEach(function (m) {
      document.getElementById(m).hidden = m !== id;
    });
    document.getElementById(id).focus();
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("action"), {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({token: form.getAttribute("data-token")}),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer"
    }).then(function (r) {
      if (r.ok) {
        form.hidden = true;
        show("success");
      } else if (r.status === 410) {
        form.hidden = true;
        show("invalid");
      } else {
        button.disabled = false;
        show("error");
      }
    }, function () {
      button.disabled = false;
      show("error");
    }).then(function () {
      form.removeAttribute("aria-busy");
    });
  });
})();
`

// pageText is the page's wording in one language.
type pageText struct {
	Lang, Title, Intro, Button, Success, Invalid, Error, NoScript string
}

var pageTexts = map[string]pageText{
	"en": {
		Lang:     "en",
		Title:    "Activate your account",
		Intro:    "Press the button below to activate your account for the secure messaging service.",
		Button:   "Activate my account",
		Success:  "Your account is active. You can close this page.",
		Invalid:  "This activation link is invalid, already used or expired. Ask your administrator to send you a new one.",
		Error:    "The activation could not be completed. Check your connection and try again.",
		NoScript: "This page needs JavaScript to activate your account.",
	},
	"fr": {
		Lang:     "fr",
		Title:    "Activez votre compte",
		Intro:    "Cliquez sur le bouton ci-dessous pour activer votre compte du service de messagerie sécurisée.",
		Button:   "Activer mon compte",
		Success:  "Votre compte est activé. Vous pouvez fermer cette page.",
		Invalid:  "Ce lien d’activation est invalide, déjà utilisé ou expiré. Demandez-en un nouveau à votre administrateur.",
		Error:    "L’activation n’a pas pu aboutir. Vérifiez votre connexion et réessayez.",
		NoScript: "Cette page a besoin de JavaScript pour activer votre compte.",
	},
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// PageCSP is the activation page's Content-Security-Policy: nothing but
// its own hashed style and script, requests to its own origin only, no
// framing, no form submission without the script.
var PageCSP = fmt.Sprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	cspHash(pageScript), cspHash(pageStyle))

// PageHeaders are the headers of the activation page.
func PageHeaders() map[string]string {
	return map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": PageCSP,
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"X-Robots-Tag":            "noindex, nofollow",
	}
}

// pageTemplate is the page. The style and the script are part of the
// template's text, so they are written as they are: the very bytes PageCSP
// hashes. html/template escapes every value for where it stands.
var pageTemplate = template.Must(template.New("activation page").Parse(`<!doctype html>
<html lang="{{(index .Texts 0).Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{{.Title}}</title>
<style>` + pageStyle + `</style>
</head>
<body>
<main>
{{range .Texts}}<section lang="{{.Lang}}">
<h1>{{.Title}}</h1>
<p>{{.Intro}}</p>
</section>
{{end}}<form id="activate" method="post" action="v1/activations" data-token="{{.Token}}">
<button id="activate-button" type="submit">{{.Button}}</button>
</form>
<noscript>{{range .Texts}}<p lang="{{.Lang}}">{{.NoScript}}</p>{{end}}</noscript>
<div role="status" aria-live="polite">
<div id="success" class="msg" tabindex="-1" hidden>{{range .Texts}}<p lang="{{.Lang}}">{{.Success}}</p>{{end}}</div>
<div id="invalid" class="msg" tabindex="-1" hidden>{{range .Texts}}<p lang="{{.Lang}}">{{.Invalid}}</p>{{end}}</div>
<div id="error" class="msg" tabindex="-1" hidden>{{range .Texts}}<p lang="{{.Lang}}">{{.Error}}</p>{{end}}</div>
</div>
</main>
<script>` + pageScript + `</script>
</body>
</html>
`))

// RenderPage returns the activation page for token in langs (the first
// is the page's language). A token that is not well-formed is left out of
// the page; its button then gets the invalid-link answer.
func RenderPage(token string, langs []string) ([]byte, error) {
	if _, ok := ParseToken(token); !ok {
		token = ""
	}
	var texts []pageText
	var titles, buttons []string
	for _, l := range langs {
		if t, ok := pageTexts[l]; ok {
			texts = append(texts, t)
			titles = append(titles, t.Title)
			buttons = append(buttons, t.Button)
		}
	}
	if len(texts) == 0 {
		return RenderPage(token, []string{"en", "fr"})
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, struct {
		Texts         []pageText
		Title, Button string
		Token         string
	}{texts, strings.Join(titles, " / "), strings.Join(buttons, " / "), token}); err != nil {
		return nil, fmt.Errorf("render the activation page: %w", err)
	}
	return b.Bytes(), nil
}
