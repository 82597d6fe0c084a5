package template

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// intrinsicKey returns the long-form key of a CloudFormation short tag such
// as "!Ref" or "!Sub", and false for YAML's own tags ("!!str", …).
func intrinsicKey(tag string) (string, bool) {
	if !strings.HasPrefix(tag, "!") || strings.HasPrefix(tag, "!!") || len(tag) < 2 {
		return "", false
	}
	name := tag[1:]
	switch name {
	case "Ref", "Condition":
		return name, true
	}
	return "Fn::" + name, true
}

// expandIntrinsics rewrites every short-tagged node in place into the
// mapping CloudFormation would see: `!Ref Api` becomes `{Ref: Api}` and
// `!GetAtt Table.Arn` becomes `{Fn::GetAtt: [Table, Arn]}`. Rewriting in
// place keeps anchors and aliases pointing at the rewritten node.
func expandIntrinsics(n *yaml.Node) {
	if n == nil {
		return
	}
	for _, c := range n.Content {
		expandIntrinsics(c)
	}
	key, ok := intrinsicKey(n.Tag)
	if !ok {
		return
	}
	inner := *n
	inner.Anchor = ""
	switch inner.Kind {
	case yaml.ScalarNode:
		inner.Tag = "!!str"
		if key == "Fn::GetAtt" {
			inner = getAttSequence(inner)
		}
	case yaml.SequenceNode:
		inner.Tag = "!!seq"
	case yaml.MappingNode:
		inner.Tag = "!!map"
	}
	*n = yaml.Node{
		Kind:   yaml.MappingNode,
		Tag:    "!!map",
		Anchor: n.Anchor,
		Line:   n.Line,
		Column: n.Column,
		Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
			&inner,
		},
	}
}

// getAttSequence turns the scalar "Resource.Attribute" of !GetAtt into the
// two-element list of its long form; the attribute may itself hold dots.
func getAttSequence(s yaml.Node) yaml.Node {
	res, attr, _ := strings.Cut(s.Value, ".")
	return yaml.Node{
		Kind:   yaml.SequenceNode,
		Tag:    "!!seq",
		Line:   s.Line,
		Column: s.Column,
		Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: res},
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: attr},
		},
	}
}

// refName returns the logical id that v names, whether written as a plain
// string or as {"Ref": id}.
func refName(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if s, ok := v["Ref"].(string); ok && len(v) == 1 {
			return s
		}
	}
	return ""
}
