package template

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

const typeBucket = "AWS::S3::Bucket"

// S3Source is an S3 event of a function: objects created in a bucket of
// the template whose key matches the filter invoke the function, as the
// bucket's notification configuration (which SAM builds from the event)
// says.
type S3Source struct {
	// Function is the function's logical id.
	Function string
	// Bucket is the bucket's logical id (the event's Bucket: !Ref X).
	Bucket string
	// Events are the event types, such as s3:ObjectCreated:*.
	Events []string
	// Prefix and Suffix are the key filter's rules ("" when absent).
	Prefix string
	Suffix string
}

type s3Event struct {
	Bucket any `yaml:"Bucket"`
	Events any `yaml:"Events"`
	Filter struct {
		S3Key struct {
			Rules []struct {
				Name  string `yaml:"Name"`
				Value string `yaml:"Value"`
			} `yaml:"Rules"`
		} `yaml:"S3Key"`
	} `yaml:"Filter"`
}

// S3Sources returns the S3 events of every function, sorted by function.
// It returns an error for an event whose Bucket is not a !Ref of a bucket
// of the template (SAM requires one), or whose filter has another rule
// than prefix and suffix.
func (t *Template) S3Sources() ([]S3Source, error) {
	var out []S3Source
	err := t.eachEvent("S3", func(id, name string, props *yaml.Node) error {
		var e s3Event
		if err := decodeOptional(props, &e); err != nil {
			return fmt.Errorf("template: function %s event %s: %w", id, name, err)
		}
		src := S3Source{Function: id, Bucket: refName(e.Bucket)}
		if b, ok := t.resources[src.Bucket]; !ok || b.Type != typeBucket {
			return fmt.Errorf("template: function %s event %s: Bucket must be !Ref <bucket> of a bucket of the template", id, name)
		}
		switch v := e.Events.(type) {
		case string:
			src.Events = []string{v}
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					src.Events = append(src.Events, s)
				}
			}
		}
		for _, rule := range e.Filter.S3Key.Rules {
			switch strings.ToLower(rule.Name) {
			case "prefix":
				src.Prefix = rule.Value
			case "suffix":
				src.Suffix = rule.Value
			default:
				return fmt.Errorf("template: function %s event %s: unknown S3Key rule %q", id, name, rule.Name)
			}
		}
		out = append(out, src)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out, nil
}
