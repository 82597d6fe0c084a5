package streamlocal

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Filter is an event source mapping's FilterCriteria: a record reaches the
// function when one of its patterns matches the record as Lambda sees it
// (eventName, dynamodb.Keys, dynamodb.NewImage...); the others are dropped
// as processed. ParseFilter refuses what it does not know, so that the
// local stack never admits a record AWS would drop, nor the reverse.
type Filter struct {
	patterns []map[string]any
}

// ParseFilter reads the Pattern strings of a FilterCriteria. It supports
// nested objects whose leaves are lists of exact values (strings, numbers,
// booleans, null) and of the operators prefix, suffix, equals-ignore-case,
// anything-but (a value or a list of values) and exists; anything else
// (such as $or or numeric) is an error. No pattern gives a nil Filter,
// which admits every record.
func ParseFilter(patterns []string) (*Filter, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	f := &Filter{}
	for _, src := range patterns {
		var p map[string]any
		if err := json.Unmarshal([]byte(src), &p); err != nil {
			return nil, fmt.Errorf("filter pattern %s: %w", src, err)
		}
		if err := checkPattern(p); err != nil {
			return nil, fmt.Errorf("filter pattern %s: %w", src, err)
		}
		f.patterns = append(f.patterns, p)
	}
	return f, nil
}

// checkPattern ensures every part of p is supported.
func checkPattern(p map[string]any) error {
	for k, v := range p {
		if strings.HasPrefix(k, "$") {
			return fmt.Errorf("%s is not supported locally", k)
		}
		switch v := v.(type) {
		case map[string]any:
			if err := checkPattern(v); err != nil {
				return err
			}
		case []any:
			for _, m := range v {
				if err := checkMatcher(m); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
			}
		default:
			return fmt.Errorf("%s: want an object or a list of values, got %v", k, v)
		}
	}
	return nil
}

func checkMatcher(m any) error {
	op, ok := m.(map[string]any)
	if !ok {
		return nil // an exact value
	}
	if len(op) != 1 {
		return fmt.Errorf("operator %v: want one operator per object", op)
	}
	for name, arg := range op {
		switch name {
		case "prefix", "suffix", "equals-ignore-case":
			if _, ok := arg.(string); !ok {
				return fmt.Errorf("%s wants a string, got %v", name, arg)
			}
		case "exists":
			if _, ok := arg.(bool); !ok {
				return fmt.Errorf("exists wants true or false, got %v", arg)
			}
		case "anything-but":
			vals, ok := arg.([]any)
			if !ok {
				vals = []any{arg}
			}
			for _, v := range vals {
				if _, isOp := v.(map[string]any); isOp {
					return fmt.Errorf("anything-but with an operator is not supported locally")
				}
			}
		default:
			return fmt.Errorf("operator %q is not supported locally", name)
		}
	}
	return nil
}

// Match reports whether rec reaches the function: true when f is nil or
// one of its patterns matches.
func (f *Filter) Match(rec events.DynamoDBEventRecord) bool {
	if f == nil {
		return true
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return false
	}
	var ev map[string]any
	if json.Unmarshal(b, &ev) != nil {
		return false
	}
	return f.MatchJSON(ev)
}

// MatchJSON is Match for a record already decoded from its JSON form.
func (f *Filter) MatchJSON(ev map[string]any) bool {
	if f == nil {
		return true
	}
	for _, p := range f.patterns {
		if matchObject(p, ev) {
			return true
		}
	}
	return false
}

// matchObject reports whether every field of pattern matches ev.
func matchObject(pattern map[string]any, ev map[string]any) bool {
	for _, k := range slices.Sorted(maps.Keys(pattern)) {
		v, present := ev[k]
		switch p := pattern[k].(type) {
		case map[string]any:
			sub, ok := v.(map[string]any)
			if !ok || !matchObject(p, sub) {
				return false
			}
		case []any:
			if !matchLeaf(p, v, present) {
				return false
			}
		}
	}
	return true
}

// matchLeaf reports whether one of matchers matches the value v (a list
// matches when one of its elements does).
func matchLeaf(matchers []any, v any, present bool) bool {
	vals, isList := v.([]any)
	if !isList {
		vals = []any{v}
	}
	for _, m := range matchers {
		if op, ok := m.(map[string]any); ok {
			if exists, ok := op["exists"].(bool); ok {
				if exists == present {
					return true
				}
				continue
			}
		}
		if !present {
			continue
		}
		for _, val := range vals {
			if matchValue(m, val) {
				return true
			}
		}
	}
	return false
}

// matchValue reports whether one matcher matches one value.
func matchValue(m, v any) bool {
	op, ok := m.(map[string]any)
	if !ok {
		return equalValue(m, v)
	}
	s, isString := v.(string)
	for name, arg := range op {
		switch name {
		case "prefix":
			return isString && strings.HasPrefix(s, arg.(string))
		case "suffix":
			return isString && strings.HasSuffix(s, arg.(string))
		case "equals-ignore-case":
			return isString && strings.EqualFold(s, arg.(string))
		case "anything-but":
			vals, ok := arg.([]any)
			if !ok {
				vals = []any{arg}
			}
			for _, x := range vals {
				if equalValue(x, v) {
					return false
				}
			}
			return true
		}
	}
	return false
}

func equalValue(a, b any) bool {
	switch a := a.(type) {
	case string:
		s, ok := b.(string)
		return ok && s == a
	case float64:
		n, ok := b.(float64)
		return ok && n == a
	case bool:
		x, ok := b.(bool)
		return ok && x == a
	case nil:
		return b == nil
	}
	return false
}
