package stack

import (
	"fmt"
	"net/url"
	"strings"

	"licenseadmin/infra/template"
)

// segment kinds, ordered by how specific API Gateway considers them.
const (
	greedy  = iota // {name+}: one or more trailing segments
	param          // {name}: exactly one segment
	literal        // a fixed segment
)

type segment struct {
	kind  int
	value string // the literal, or the parameter's name
}

// apiRoute is one route of the template and the function it invokes.
type apiRoute struct {
	template.Route
	function string
	segments []segment // nil for $default
}

// router selects routes as an HTTP API does: the most specific route whose
// method and path template match, literal segments beating parameters and
// parameters beating greedy ones, a route's own method beating ANY, and
// $default when nothing else matches.
type router struct {
	routes []apiRoute
}

// newRouter reads the HttpApi routes of every function. It returns an error
// for a malformed path template or a route declared twice.
func newRouter(fns []template.Function) (*router, error) {
	r := &router{}
	seen := map[string]string{}
	for _, fn := range fns {
		for _, rt := range fn.Routes {
			if other, dup := seen[rt.Key()]; dup {
				return nil, fmt.Errorf("route %q is declared by both %s and %s", rt.Key(), other, fn.LogicalID)
			}
			seen[rt.Key()] = fn.LogicalID
			segs, err := parsePath(rt.Path)
			if err != nil {
				return nil, fmt.Errorf("%s: route %q: %w", fn.LogicalID, rt.Key(), err)
			}
			r.routes = append(r.routes, apiRoute{Route: rt, function: fn.LogicalID, segments: segs})
		}
	}
	return r, nil
}

func parsePath(p string) ([]segment, error) {
	if p == "$default" {
		return nil, nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	segs := make([]segment, len(parts))
	for i, part := range parts {
		name, isVar := strings.CutPrefix(part, "{")
		if !isVar {
			if strings.ContainsAny(part, "{}") {
				return nil, fmt.Errorf("segment %q: a parameter must be a whole segment", part)
			}
			segs[i] = segment{kind: literal, value: part}
			continue
		}
		name, ok := strings.CutSuffix(name, "}")
		if !ok || name == "" || strings.ContainsAny(name, "{}") {
			return nil, fmt.Errorf("segment %q: malformed parameter", part)
		}
		if name, ok = strings.CutSuffix(name, "+"); ok {
			if i != len(parts)-1 {
				return nil, fmt.Errorf("greedy parameter {%s+} must be the last segment", name)
			}
			segs[i] = segment{kind: greedy, value: name}
			continue
		}
		segs[i] = segment{kind: param, value: name}
	}
	return segs, nil
}

// match returns the route for method and the request's escaped path, with
// its decoded path parameters; false means 404.
func (r *router) match(method, escapedPath string) (*apiRoute, map[string]string, bool) {
	parts := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	var best *apiRoute
	var bestParams map[string]string
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.Method != method && rt.Method != "ANY" {
			continue
		}
		params, ok := rt.matchPath(parts)
		if !ok {
			continue
		}
		if best == nil || rt.moreSpecific(best) {
			best, bestParams = rt, params
		}
	}
	return best, bestParams, best != nil
}

// matchPath matches the escaped path segments against the route's template.
func (rt *apiRoute) matchPath(parts []string) (map[string]string, bool) {
	if rt.segments == nil { // $default
		return nil, true
	}
	var params map[string]string
	set := func(name, raw string) bool {
		v, err := url.PathUnescape(raw)
		if err != nil || v == "" {
			return false
		}
		if params == nil {
			params = map[string]string{}
		}
		params[name] = v
		return true
	}
	for i, seg := range rt.segments {
		if i >= len(parts) {
			return nil, false
		}
		switch seg.kind {
		case literal:
			if v, err := url.PathUnescape(parts[i]); err != nil || v != seg.value {
				return nil, false
			}
		case param:
			if !set(seg.value, parts[i]) {
				return nil, false
			}
		case greedy:
			return params, set(seg.value, strings.Join(parts[i:], "/"))
		}
	}
	return params, len(parts) == len(rt.segments)
}

// moreSpecific reports whether rt should win over other when both match.
func (rt *apiRoute) moreSpecific(other *apiRoute) bool {
	if (rt.segments == nil) != (other.segments == nil) {
		return other.segments == nil // anything beats $default
	}
	for i := 0; i < len(rt.segments) && i < len(other.segments); i++ {
		if a, b := rt.segments[i].kind, other.segments[i].kind; a != b {
			return a > b
		}
	}
	if len(rt.segments) != len(other.segments) {
		return len(rt.segments) > len(other.segments)
	}
	return rt.Method != "ANY" && other.Method == "ANY"
}
