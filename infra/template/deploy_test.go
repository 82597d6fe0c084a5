package template_test

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"licenseadmin"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"

	"go.yaml.in/yaml/v3"
)

// The tests of this file hold template.yaml to what only a deploy in AWS
// would otherwise show: quotas CloudFormation and Lambda enforce, a first
// creation that can be retried after a rollback, logs that expire, alarm
// texts that say what the alarm does, and parameters whose every allowed
// value the code accepts at start-up.

// maxFiltersPerMapping is Lambda's default quota of filter patterns per
// event source mapping; one more fails the deploy.
const maxFiltersPerMapping = 5

// TestEventFilterQuota ensures no event source mapping holds more filter
// patterns than Lambda's default quota allows.
func TestEventFilterQuota(t *testing.T) {
	d := realDocument(t)
	for _, fn := range d.OfType(typeFunction) {
		events, _ := fn.Properties["Events"].(map[string]any)
		for name, ev := range events {
			n := len(template.List(template.Path(ev, "Properties.FilterCriteria.Filters")))
			if n > maxFiltersPerMapping {
				t.Errorf("%s: event %s has %d filter patterns; Lambda allows %d per mapping: widen a pattern or add a mapping", fn.LogicalID, name, n, maxFiltersPerMapping)
			}
		}
	}
}

// TestRetainedResourcesRetainExceptOnCreate ensures every resource kept on
// stack deletion is removed when the stack's first creation rolls back:
// with Retain, the table or the bucket (fixed name) outlives the failed
// creation and the next deploy fails with "already exists".
func TestRetainedResourcesRetainExceptOnCreate(t *testing.T) {
	d := realDocument(t)
	kept := 0
	for _, id := range slices.Sorted(maps.Keys(d.Resources)) {
		r := d.Resources[id]
		switch r.DeletionPolicy {
		case "Retain":
			t.Errorf("%s: DeletionPolicy Retain: use RetainExceptOnCreate so that a rolled-back first deploy can be retried", id)
		case "RetainExceptOnCreate":
			kept++
		}
	}
	if kept == 0 {
		t.Error("no resource is kept on stack deletion: the table and the bucket hold the data")
	}
	if tbl, ok := d.Resources["Table"]; !ok || tbl.Properties["DeletionProtectionEnabled"] != true {
		t.Error("Table: DeletionProtectionEnabled is not true")
	}
}

// TestFunctionLogsExpire ensures every function logs to a log group of the
// template that has a retention (its own LoggingConfig, or Globals'):
// the group Lambda creates by itself keeps logs forever.
func TestFunctionLogsExpire(t *testing.T) {
	d := realDocument(t)
	global := template.Path(d.Globals, "Function.LoggingConfig.LogGroup")
	for _, fn := range d.OfType(typeFunction) {
		lg := template.Path(fn.Properties, "LoggingConfig.LogGroup")
		if lg == nil {
			lg = global
		}
		ok := false
		for _, ref := range template.References(lg) {
			if r, found := d.Resources[ref.Target]; found && r.Type == "AWS::Logs::LogGroup" && r.Properties["RetentionInDays"] != nil {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s logs to no log group of the template with RetentionInDays (LoggingConfig.LogGroup, or Globals')", fn.LogicalID)
		}
	}
}

var (
	timesText   = regexp.MustCompile(`failed (\d+) times`)
	percentText = regexp.MustCompile(`(\d+(?:\.\d+)?)%`)
	windowText  = regexp.MustCompile(`(\d+) of the last (\d+) minutes`)
	zeroText    = regexp.MustCompile(`(?i)\b(more than 0|are waiting|failed \(|were throttled|throttled reads|refused)`)
)

// TestAlarmTextsMatchSettings ensures an alarm's description says what it
// checks: the number of failed attempts it names is the queue's
// maxReceiveCount (or the invocations' retries plus one), a percentage
// is its threshold, and "N of the last M minutes" its datapoints and
// evaluation window.
func TestAlarmTextsMatchSettings(t *testing.T) {
	d := realDocument(t)
	attempts := failedAttempts(d)
	for _, a := range d.OfType(typeAlarm) {
		desc, _ := a.Properties["AlarmDescription"].(string)
		for _, m := range timesText.FindAllStringSubmatch(desc, -1) {
			n, _ := strconv.Atoi(m[1])
			queue := ""
			for _, mr := range alarmMetrics(a) {
				for _, ref := range template.References(mr.dims["QueueName"]) {
					queue = ref.Target
				}
			}
			want, ok := attempts[queue]
			switch {
			case !ok:
				t.Errorf("alarm %s says %q but watches no dead-letter or failure queue whose attempts the template sets", a.LogicalID, m[0])
			case n != want:
				t.Errorf("alarm %s says %q, but what lands in %s failed %d times", a.LogicalID, m[0], queue, want)
			}
		}
		th := number(a.Properties["Threshold"])
		percents := percentText.FindAllStringSubmatch(desc, -1)
		switch {
		case th == 0 && len(percents) > 0 && !strings.Contains(a.LogicalID, "Ses"):
			t.Errorf("alarm %s: threshold 0 but its text names %s", a.LogicalID, percents[0][0])
		case th == 0 && !zeroText.MatchString(desc):
			t.Errorf("alarm %s: threshold 0 (any occurrence); its text should say so (\"more than 0\", \"are waiting\", ...): %q", a.LogicalID, desc)
		case th != 0:
			found := false
			for _, p := range percents {
				v, _ := strconv.ParseFloat(p[1], 64)
				found = found || near(v, th) || near(v/100, th)
			}
			if !found {
				t.Errorf("alarm %s: threshold %v, but its text names no such percentage: %q", a.LogicalID, th, desc)
			}
		}
		if m := windowText.FindStringSubmatch(desc); m != nil {
			dp, _ := strconv.Atoi(m[1])
			minutes, _ := strconv.Atoi(m[2])
			period := 0.0
			for _, mt := range template.List(a.Properties["Metrics"]) {
				if p := number(template.Path(mt, "MetricStat.Period")); p > 0 {
					period = p
				}
			}
			if p := number(a.Properties["Period"]); p > 0 {
				period = p
			}
			if float64(dp) != number(a.Properties["DatapointsToAlarm"]) || float64(minutes)*60 != number(a.Properties["EvaluationPeriods"])*period {
				t.Errorf("alarm %s says %q but alarms on %v of %v periods of %v s", a.LogicalID, m[0], a.Properties["DatapointsToAlarm"], a.Properties["EvaluationPeriods"], period)
			}
		}
	}
}

// failedAttempts returns, per failure queue, how many times what lands
// there was tried: the maxReceiveCount of the queue it is the dead-letter
// queue of, or the retries of the asynchronous invocations or the stream
// mapping that send to it, plus the first try.
func failedAttempts(d *template.Document) map[string]int {
	out := map[string]int{}
	for _, q := range d.OfType(typeQueue) {
		if dlq := failureQueue(d, template.Path(q.Properties, "RedrivePolicy.deadLetterTargetArn")); dlq != "" {
			out[dlq] = int(number(template.Path(q.Properties, "RedrivePolicy.maxReceiveCount")))
		}
	}
	for _, fn := range d.OfType(typeFunction) {
		eic := template.Path(fn.Properties, "EventInvokeConfig")
		if q := failureQueue(d, template.Path(eic, "DestinationConfig.OnFailure.Destination")); q != "" {
			out[q] = int(number(template.Path(eic, "MaximumRetryAttempts"))) + 1
		}
		events, _ := fn.Properties["Events"].(map[string]any)
		for _, ev := range events {
			props := template.Path(ev, "Properties")
			if q := failureQueue(d, template.Path(props, "DestinationConfig.OnFailure.Destination")); q != "" {
				out[q] = int(number(template.Path(props, "MaximumRetryAttempts"))) + 1
			}
		}
	}
	return out
}

func number(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// parameterCandidates are, per parameter that reaches the code through a
// function's environment, the values around the edges of what its
// AllowedPattern admits: each one the pattern admits must be accepted by
// the code's own parser (app.ConfigFrom), or the function would fail at
// every cold start after a deploy CloudFormation accepted. A parameter with
// AllowedValues is checked with each of them instead.
var parameterCandidates = map[string][]string{
	"ActivationTtl": activationTTLCandidates(),
	"PublicBaseUrl": {
		"", "https://a", "http://a", "https://admin-api.example.com", "https://a.example.com:8443",
		"https://a/b", "https://a/b/c", "https://a/b/", "https://a/", "https://a?x", "https://a#x",
		"https://a/b?c", "ftp://a", "https:/a", "https://", "https://a b", "https://a/%zz", "https://a/ü",
		"https://user@a", "https://user:pw@a", "https://[::1]", "https://[::1]:80/x", "https://a:99999",
		"https://a:port", "https://%41", "https://a\x7f", "https://a/\x00", "HTTPS://a", "https://-a-",
		"https://a:", "https://:80", "https://a/.", "https://a/..", "https://a//b", "https://a/b;c",
	},
	"SenderEmail": {
		"", "a@b.c", "no-reply@example.com", "a@b", "@b.c", "a@.c", "a@b.", "a b@c.d", "a@b c.d",
		"<a@b.c>", "A <a@b.c>", "a@@b.c", "a@b@c.d", "\"a\"@b.c", "a.@b.c", ".a@b.c", "a..b@c.d",
		"a@b..c", "a@[1.2.3.4]", "a@b.c.", "a,b@c.d", "a;b@c.d", "a(b)@c.d", "é@b.c", "a@é.c",
		"a\x00@b.c", "a@b.c\x00", "a:b@c.d", "a\\b@c.d",
	},
	"SesConfigurationSet": {"", "a", "A-b_9", strings.Repeat("a", 64), strings.Repeat("a", 65), "a.b", "a b", "é"},
}

// activationTTLCandidates is every string of up to four digits followed
// by h, and a few other durations.
func activationTTLCandidates() []string {
	out := []string{"", "h", "1h0m", "90m", "1.5h", "+1h", "-1h", "0x1h", "1H", " 1h"}
	for width := 1; width <= 4; width++ {
		for i := 0; i < int(math.Pow10(width)); i++ {
			out = append(out, fmt.Sprintf("%0*dh", width, i))
		}
	}
	return out
}

// TestParameterPatternsAdmitOnlyAcceptedValues ensures every value a
// parameter's AllowedPattern (or AllowedValues) admits, among the
// candidates around its edges, is accepted by the code that reads it from
// the environment, and so is its default.
func TestParameterPatternsAdmitOnlyAcceptedValues(t *testing.T) {
	d := realDocument(t)
	envOf := parameterEnv(d)
	if len(envOf) == 0 {
		t.Fatal("no parameter reaches a function's environment")
	}
	for _, param := range slices.Sorted(maps.Keys(envOf)) {
		env := envOf[param]
		p, _ := d.Parameters[param].(map[string]any)
		var candidates []string
		var admits func(string) bool
		switch {
		case p["AllowedValues"] != nil:
			for _, v := range template.List(p["AllowedValues"]) {
				candidates = append(candidates, fmt.Sprint(v))
			}
			admits = func(string) bool { return true }
		case p["AllowedPattern"] != nil:
			pattern, _ := p["AllowedPattern"].(string)
			// CloudFormation matches the pattern against the whole value.
			re, err := regexp.Compile(`^(?:` + pattern + `)$`)
			if err != nil {
				t.Errorf("%s: AllowedPattern %q: %v", param, pattern, err)
				continue
			}
			admits = re.MatchString
			var ok bool
			if candidates, ok = parameterCandidates[param]; !ok {
				t.Errorf("%s (%s) has an AllowedPattern but no candidates in parameterCandidates: list the values around its edges", param, env)
				continue
			}
		default:
			t.Errorf("%s reaches %s with neither AllowedPattern nor AllowedValues: any string would deploy", param, env)
			continue
		}
		if def, ok := p["Default"]; ok {
			candidates = append(candidates, fmt.Sprint(def))
		}
		admitted := 0
		for _, v := range candidates {
			if !admits(v) {
				continue
			}
			admitted++
			vars := map[string]string{"TABLE_NAME": "t", env: v}
			if _, err := app.ConfigFrom(func(k string) string { return vars[k] }); err != nil {
				t.Errorf("%s admits %q, which the functions refuse at start-up: %v", param, v, err)
			}
		}
		if admitted == 0 {
			t.Errorf("%s admits none of its candidates", param)
		}
	}
}

// parameterEnv returns, per parameter that some function's environment
// variable is set to (Globals' or its own), the variable's name.
func parameterEnv(d *template.Document) map[string]string {
	out := map[string]string{}
	add := func(vars any) {
		m, _ := vars.(map[string]any)
		for name, v := range m {
			if ref, ok := template.Path(v, "Ref").(string); ok {
				if _, isParam := d.Parameters[ref]; isParam {
					out[ref] = name
				}
			}
		}
	}
	add(template.Path(d.Globals, "Function.Environment.Variables"))
	for _, fn := range d.OfType(typeFunction) {
		add(template.Path(fn.Properties, "Environment.Variables"))
	}
	return out
}

// TestAPICORS ensures browsers on the portal's origins can call the API:
// the HTTP API allows the headers the API reads and exposes the ones it
// sets, and takes its origins from a parameter that does not default to
// any origin ("*").
func TestAPICORS(t *testing.T) {
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		t.Fatal(err)
	}
	c := tpl.CORS
	if c == nil {
		t.Fatal("the HTTP API has no CorsConfiguration: browsers get no answer to their preflights")
	}
	same := func(got, want []string) bool {
		g := append([]string(nil), got...)
		sort.Strings(g)
		sort.Strings(want)
		return strings.EqualFold(strings.Join(g, ","), strings.Join(want, ","))
	}
	if want := []string{"Authorization", "Content-Type", "Idempotency-Key", "If-Match"}; !same(c.AllowHeaders, want) {
		t.Errorf("AllowHeaders %v, want %v", c.AllowHeaders, want)
	}
	if want := specResponseHeaders(t); !same(c.ExposeHeaders, want) {
		t.Errorf("ExposeHeaders %v, want %v: every response header openapi.yaml documents that a browser does not show a page by itself", c.ExposeHeaders, want)
	}
	if c.OriginsParameter == "" {
		t.Errorf("AllowOrigins %v: take them from a parameter (the portal's origins differ per deployment)", c.AllowOrigins)
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			t.Errorf("AllowOrigins defaults to *: any page could call the API with a token it holds")
		}
	}
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
		if !strings.Contains(","+strings.Join(c.AllowMethods, ",")+",", ","+m+",") {
			t.Errorf("AllowMethods %v lacks %s", c.AllowMethods, m)
		}
	}
}

// specResponseHeaders returns the response headers openapi.yaml documents
// that a page on another origin can read only when CORS exposes them: all
// but the CORS-safelisted ones (Cache-Control, ...) and WWW-Authenticate,
// whose 401 tells the portal to sign in again whatever the header says.
// Deriving the list from the spec keeps a header added to an answer (the
// CSV statistics' Next-Cursor) from being invisible to the portal.
func specResponseHeaders(t *testing.T) []string {
	t.Helper()
	type response struct {
		Ref     string         `yaml:"$ref"`
		Headers map[string]any `yaml:"headers"`
	}
	var spec struct {
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			Responses map[string]response `yaml:"responses"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(licenseadmin.OpenAPI, &spec); err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{"cache-control": true, "content-language": true, "content-length": true,
		"content-type": true, "expires": true, "last-modified": true, "pragma": true, "www-authenticate": true}
	seen := map[string]bool{}
	for path, item := range spec.Paths {
		for method, op := range item {
			raw, err := yaml.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			var o struct {
				Responses map[string]response `yaml:"responses"`
			}
			if err := yaml.Unmarshal(raw, &o); err != nil {
				continue // parameters, summary: not an operation
			}
			for status, r := range o.Responses {
				if r.Ref != "" {
					name, ok := strings.CutPrefix(r.Ref, "#/components/responses/")
					if !ok {
						t.Fatalf("%s %s %s: $ref %s", method, path, status, r.Ref)
					}
					r = spec.Components.Responses[name]
				}
				for h := range r.Headers {
					if !skip[strings.ToLower(h)] {
						seen[h] = true
					}
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
