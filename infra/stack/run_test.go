package stack

import (
	"strings"
	"testing"

	"licenseadmin/infra/cli"
)

// TestDataDirs ensures PERSIST chooses where `run` keeps its data: memory
// by default, .local/ under the repository root with PERSIST=1.
func TestDataDirs(t *testing.T) {
	for _, tc := range []struct {
		persist    string
		ddb, s3    string
		wantErr    bool
		wantInText string
	}{
		{"", "", "", false, "in memory"},
		{"0", "", "", false, "in memory"},
		{"1", "/repo/.local/dynamodb", "/repo/.local/s3", false, "kept across restarts"},
		{"yes", "", "", true, ""},
	} {
		e := &cli.Env{Getenv: func(k string) string { return map[string]string{"PERSIST": tc.persist}[k] }}
		d, err := dataDirs(e, "/repo")
		if (err != nil) != tc.wantErr || d.dynamoDB != tc.ddb || d.s3 != tc.s3 || !strings.Contains(d.String(), tc.wantInText) {
			t.Errorf("PERSIST=%q: %+v %q %v", tc.persist, d, d.String(), err)
		}
	}
}
