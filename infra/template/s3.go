package template

import (
	"fmt"
	"strings"
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
	return sources(t, "S3", func(id, name string, e *s3Event) (S3Source, error) {
		src := S3Source{Function: id, Bucket: refName(e.Bucket)}
		if b, ok := t.resources[src.Bucket]; !ok || b.Type != typeBucket {
			return S3Source{}, fmt.Errorf("template: function %s event %s: Bucket must be !Ref <bucket> of a bucket of the template", id, name)
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
				return S3Source{}, fmt.Errorf("template: function %s event %s: unknown S3Key rule %q", id, name, rule.Name)
			}
		}
		return src, nil
	})
}
