package licenseadmin_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside matches what a file of a project that stands alone must not
// name: the directory beside the repository that once held the contract,
// paths of the machine it was written on, the contract's old file name,
// and the numbers of the issues that asked for a change. The expressions
// are written so that they do not match their own source.
var outside = []*regexp.Regexp{
	regexp.MustCompile(`/wor[k]/`),
	regexp.MustCompile(`\bSPEC\.md\b`),
	regexp.MustCompile(`(?i)\bissues? ?#?[0-9]+\b`),
}

// sibling matches a relative path into a directory named shared: fine when
// it leads to a file of the repository (a link from docs/ to shared/store),
// outside when it leaves the repository (the sibling directory beside it).
var sibling = regexp.MustCompile(`(?:\.\./)+shared\b[\w./-]*`)

// TestStandsAlone ensures no tracked file refers to anything outside the
// repository: a fresh clone must hold its whole contract (docs/api.md,
// openapi.yaml), and a reader must not need an issue tracker or a sibling
// directory to follow a comment.
func TestStandsAlone(t *testing.T) {
	files := trackedFiles(t)
	if len(files) < 10 {
		t.Fatalf("found only %d files to check: %v", len(files), files)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet committed
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(b, 0) >= 0 {
			continue // binary
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, re := range outside {
				if m := re.FindString(line); m != "" {
					t.Errorf("%s:%d names %q, outside the repository: say it in the project's own words (docs/), or drop it", name, i+1, m)
				}
			}
			for _, m := range sibling.FindAllString(line, -1) {
				if !insideRepo(filepath.Join(filepath.Dir(name), strings.TrimRight(m, ".")), ".") {
					t.Errorf("%s:%d names %q, which is not a file of the repository: say it in the project's own words (docs/), or drop it", name, i+1, m)
				}
			}
		}
	}
}

// trackedFiles lists the files git tracks, or, where git or the
// repository's history is missing (an exported tarball), every file but
// those git ignores by convention here.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("git", "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		var files []string
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			files = append(files, filepath.FromSlash(f))
		}
		return files
	}
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "bin" || d.Name() == "bench") {
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// insideRepo reports whether path, relative to the repository root, stays
// inside it and exists.
func insideRepo(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	_, err = os.Stat(path)
	return err == nil
}
