package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// A figure is one measured quantity of the benchmark, with one value per
// run, its floor (another figure measured in the same run) and its target.

// figureDef says what a figure means and what it must reach.
type figureDef struct {
	ID      string
	Title   string
	Unit    string
	Meaning string
	// Family names the figures that share this meaning, such as
	// "api.<op>.c<N>.p<P>": the table explains each family once.
	Family string
	// Target describes the goal in words; "" when the figure is only
	// informative (floors, percentiles without a target).
	Target string
	// Floor is the ID of the figure this one is compared with, run by run.
	Floor string
	// Check tells whether the medians (value and ratio to the floor; NaN
	// without a floor) reach the target.
	Check func(value, ratio float64) bool
}

// figure is a figureDef with its values.
type figure struct {
	figureDef
	values []float64 // per run; NaN when not measured in that run
	notes  []string
}

// figureSet keeps the figures in the order they were defined.
type figureSet struct {
	runs  int
	order []string
	byID  map[string]*figure
	notes []string
}

func newFigureSet(runs int) *figureSet {
	return &figureSet{runs: runs, byID: map[string]*figure{}}
}

// define adds d unless a figure with its ID exists; it returns the figure.
func (s *figureSet) define(d figureDef) *figure {
	if f, ok := s.byID[d.ID]; ok {
		return f
	}
	f := &figure{figureDef: d, values: make([]float64, s.runs)}
	for i := range f.values {
		f.values[i] = math.NaN()
	}
	s.byID[d.ID] = f
	s.order = append(s.order, d.ID)
	return f
}

// record sets the value of figure id in run (0-based). It panics for an
// undefined id: every figure is defined before it is measured.
func (s *figureSet) record(run int, id string, v float64) {
	f, ok := s.byID[id]
	if !ok {
		panic("bench: figure " + id + " is not defined")
	}
	f.values[run] = v
}

// note attaches an explanation to figure id (or to the whole report when
// id is "").
func (s *figureSet) note(id, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if f, ok := s.byID[id]; ok {
		if !slices.Contains(f.notes, msg) {
			f.notes = append(f.notes, msg)
		}
		return
	}
	if !slices.Contains(s.notes, msg) {
		s.notes = append(s.notes, msg)
	}
}

// ratios returns value/floor for each run where both were measured.
func (s *figureSet) ratios(f *figure) []float64 {
	fl, ok := s.byID[f.Floor]
	if !ok {
		return nil
	}
	out := make([]float64, len(f.values))
	for i := range f.values {
		out[i] = f.values[i] / fl.values[i]
	}
	return out
}

// spread is the minimum, median and maximum of the measured values.
type spread struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func spreadOf(vs []float64) spread {
	var ok []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return spread{Min: math.NaN(), Median: math.NaN(), Max: math.NaN()}
	}
	sort.Float64s(ok)
	med := ok[len(ok)/2]
	if len(ok)%2 == 0 {
		med = (ok[len(ok)/2-1] + ok[len(ok)/2]) / 2
	}
	return spread{N: len(ok), Min: ok[0], Median: med, Max: ok[len(ok)-1]}
}

// verdict is "ok", "MISSED", "not measured" or "" (no target).
func (s *figureSet) verdict(f *figure) string {
	if f.Check == nil {
		return ""
	}
	v := spreadOf(f.values)
	if v.N == 0 {
		return "not measured"
	}
	r := math.NaN()
	if f.Floor != "" {
		rs := spreadOf(s.ratios(f))
		if rs.N == 0 {
			return "not measured"
		}
		r = rs.Median
	}
	if f.Check(v.Median, r) {
		return "ok"
	}
	return "MISSED"
}

// formatValue renders v with a precision that suits its size.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func formatSpread(s spread) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return formatValue(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", formatValue(s.Median), formatValue(s.Min), formatValue(s.Max))
}

// printTable writes the figures as a table: median [min–max] over the
// runs, the floor's median, the ratio's median [min–max], the target and
// whether the medians reach it; then each figure's meaning and notes.
func (s *figureSet) printTable(w io.Writer, judged bool) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tmedian [min–max]\tfloor\tratio [min–max]\ttarget\tverdict")
	for _, id := range s.order {
		f := s.byID[id]
		floor, ratio := "", ""
		if fl, ok := s.byID[f.Floor]; ok {
			floor = formatValue(spreadOf(fl.values).Median)
			ratio = formatSpread(spreadOf(s.ratios(f)))
		}
		verdict := s.verdict(f)
		if !judged && verdict != "" && verdict != "not measured" {
			verdict = "(quick: not judged)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Unit, formatSpread(spreadOf(f.values)), floor, ratio, f.Target, verdict)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nWhat each figure means:")
	explained := map[string]bool{}
	for _, id := range s.order {
		f := s.byID[id]
		name := f.ID
		if f.Family != "" {
			name = f.Family
		}
		if !explained[name] {
			explained[name] = true
			fmt.Fprintf(w, "  %s\n      %s\n", name, f.Meaning)
		}
		for _, n := range f.notes {
			fmt.Fprintf(w, "      note (%s): %s\n", f.ID, n)
		}
	}
	if len(s.notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range s.notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

// benchReport is the JSON written to bench/results.json.
type benchReport struct {
	StartedAt time.Time    `json:"startedAt"`
	Seconds   float64      `json:"seconds"`
	Quick     bool         `json:"quick"`
	Runs      int          `json:"runs"`
	Machine   benchMachine `json:"machine"`
	Commit    benchCommit  `json:"commit"`
	Figures   []jsonFigure `json:"figures"`
	Notes     []string     `json:"notes,omitempty"`
}

type jsonFigure struct {
	ID      string     `json:"id"`
	Title   string     `json:"title"`
	Unit    string     `json:"unit"`
	Meaning string     `json:"meaning"`
	Target  string     `json:"target,omitempty"`
	Values  []*float64 `json:"values"`
	Spread  spread     `json:"spread"`
	Floor   string     `json:"floor,omitempty"`
	Ratios  []*float64 `json:"ratios,omitempty"`
	Ratio   *spread    `json:"ratio,omitempty"`
	Verdict string     `json:"verdict,omitempty"`
	Notes   []string   `json:"notes,omitempty"`
}

// jsonFloats turns NaN (not measured) into null.
func jsonFloats(vs []float64) []*float64 {
	out := make([]*float64, len(vs))
	for i, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			v := v
			out[i] = &v
		}
	}
	return out
}

// jsonSpread is spreadOf with NaN turned into zero, since JSON has no NaN;
// n says how many values there were.
func jsonSpread(vs []float64) spread {
	s := spreadOf(vs)
	if s.N == 0 {
		return spread{}
	}
	return s
}

func (s *figureSet) jsonFigures() []jsonFigure {
	var out []jsonFigure
	for _, id := range s.order {
		f := s.byID[id]
		j := jsonFigure{
			ID: f.ID, Title: f.Title, Unit: f.Unit, Meaning: f.Meaning, Target: f.Target,
			Values: jsonFloats(f.values), Spread: jsonSpread(f.values),
			Verdict: s.verdict(f), Notes: f.notes,
		}
		if _, ok := s.byID[f.Floor]; ok {
			rs := s.ratios(f)
			sp := jsonSpread(rs)
			j.Floor, j.Ratios, j.Ratio = f.Floor, jsonFloats(rs), &sp
		}
		out = append(out, j)
	}
	return out
}

func (r *benchReport) write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// The usual targets.

func atMost(limit float64) func(v, r float64) bool {
	return func(v, _ float64) bool { return v <= limit }
}

func exactly(want float64) func(v, r float64) bool {
	return func(v, _ float64) bool { return v == want }
}

func ratioAtMost(limit float64) func(v, r float64) bool {
	return func(_, r float64) bool { return r <= limit }
}

func ratioAtLeast(limit float64) func(v, r float64) bool {
	return func(_, r float64) bool { return r >= limit }
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile (0 < p <= 100, nearest rank) of
// ds in milliseconds; NaN when ds is empty.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return ms(s[rank-1])
}

// slug makes a function directory name usable in a figure id.
func slug(s string) string { return strings.ReplaceAll(s, " ", "-") }
