package bench

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"licenseadmin"
)

// benchBuilds holds every function built twice into a temporary directory:
// for Lambda (linux/arm64, the flags of the Makefile's build targets) to
// weigh it, and for this machine (same flags) to time its start-up.
type benchBuilds struct {
	b         *bench
	dir       string
	functions []string // directories under functions/
	env       []string // the environment of a start-up run
}

// lambdaBuildFlags are the flags of the deployed binaries.
var lambdaBuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w"}

// pendingBuilds is buildFunctions running in the background: the builds
// take a machine's two cores for about twenty seconds and the stack's
// set-up (warm-up, log entries) measures nothing, so they overlap.
type pendingBuilds struct {
	done chan struct{}
	bb   *benchBuilds
	err  error
}

// startBuilds starts buildFunctions in the background.
func (b *bench) startBuilds(ctx context.Context) *pendingBuilds {
	p := &pendingBuilds{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.bb, p.err = b.buildFunctions(ctx)
	}()
	return p
}

// wait returns the builds once done.
func (p *pendingBuilds) wait() (*benchBuilds, error) {
	<-p.done
	return p.bb, p.err
}

// remove waits for the builds and removes them.
func (p *pendingBuilds) remove() {
	if bb, _ := p.wait(); bb != nil {
		bb.remove()
	}
}

// buildFunctions builds every function twice: for Lambda, to weigh it, and
// for this machine, to time its start-up and run the import.
func (b *bench) buildFunctions(ctx context.Context) (*benchBuilds, error) {
	start := time.Now()
	entries, err := os.ReadDir(filepath.Join(b.root, "functions"))
	if err != nil {
		return nil, err
	}
	bb := &benchBuilds{b: b}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(b.root, "functions", e.Name(), "main.go")); e.IsDir() && err == nil {
			bb.functions = append(bb.functions, e.Name())
		}
	}
	if len(bb.functions) == 0 {
		return nil, fmt.Errorf("no functions under %s", filepath.Join(b.root, "functions"))
	}
	if bb.dir, err = os.MkdirTemp("", "licenseadmin-bench-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			bb.remove()
		}
	}()
	for _, target := range []struct{ dir, goos, goarch string }{
		{"lambda", "linux", "arm64"},
		{"host", runtime.GOOS, runtime.GOARCH},
	} {
		out := filepath.Join(bb.dir, target.dir) + string(filepath.Separator)
		args := append(append([]string{"build"}, lambdaBuildFlags...), "-o", out, "./functions/...")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = b.root
		cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build for %s/%s: %w\n%s", target.goos, target.goarch, err, msg)
		}
	}
	if bb.env, err = startupEnv(b.root, bb.dir); err != nil {
		return nil, err
	}
	b.logf("built %d functions for linux/arm64 and %s/%s in %s", len(bb.functions), runtime.GOOS, runtime.GOARCH, time.Since(start).Round(time.Millisecond))
	ok = true
	return bb, nil
}

// sizeFigures records the size of each Lambda binary.
func (bb *benchBuilds) sizeFigures() error {
	b := bb.b
	for _, fn := range bb.functions {
		id := "size." + slug(fn)
		b.figs.define(figureDef{ID: id, Title: fn + " binary size", Unit: "MB", Family: "size.<function>",
			Meaning: fmt.Sprintf("functions/<function> built for Lambda (GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build %s): file size in MB (10^6 bytes)", strings.Join(quoteArgs(lambdaBuildFlags), " ")),
			Target:  "<= 16", Check: atMost(16)})
		st, err := os.Stat(filepath.Join(bb.dir, "lambda", fn))
		if err != nil {
			return err
		}
		b.figs.record(0, id, float64(st.Size())/1e6)
	}
	return nil
}

func (bb *benchBuilds) remove() {
	if bb.dir != "" {
		os.RemoveAll(bb.dir)
	}
}

// startupFigures times each function from process start to the point where
// its handler is ready: main reads the configuration, builds the AWS
// clients and services, and calls lambda.Start, which (without the Lambda
// runtime's AWS_LAMBDA_RUNTIME_API) exits at once saying so. The run is
// counted only when that message proves lambda.Start was reached.
func (bb *benchBuilds) startupFigures(ctx context.Context) error {
	b := bb.b
	for _, fn := range bb.functions {
		id := "startup." + slug(fn)
		b.figs.define(figureDef{ID: id, Title: fn + " start-up", Unit: "ms", Family: "startup.<function>",
			Meaning: fmt.Sprintf("functions/<function> built for this machine with the same flags, started with a Lambda-like environment but no runtime API: time from process start until lambda.Start is reached (configuration read, AWS clients and services built) and the process exits saying AWS_LAMBDA_RUNTIME_API is not set; median of %d starts", b.cfg.startupRuns),
			Target:  "<= 30", Check: atMost(30)})
		var times []time.Duration
		for range b.cfg.startupRuns {
			d, err := bb.startOnce(ctx, fn)
			if err != nil {
				return err
			}
			times = append(times, d)
		}
		b.figs.record(b.run, id, percentile(times, 50))
	}
	b.logf("start-up: %d functions × %d starts", len(bb.functions), b.cfg.startupRuns)
	return nil
}

// runtimeMissing is what aws-lambda-go's lambda.Start prints (and exits
// with) when AWS_LAMBDA_RUNTIME_API is not set.
const runtimeMissing = "AWS_LAMBDA_RUNTIME_API"

func (bb *benchBuilds) startOnce(ctx context.Context, fn string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(bb.dir, "host", fn))
	cmd.Env = bb.env
	cmd.Dir = bb.dir
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if !strings.Contains(stderr.String(), runtimeMissing) {
		return 0, fmt.Errorf("start-up of %s: it did not reach lambda.Start (exit: %v): %s", fn, err, strings.TrimSpace(stderr.String()))
	}
	return d, nil
}

// startupEnv is the environment of a Lambda function, as far as the
// functions read it: every variable that template.yaml gives any function
// (resolved as templateVariables says), AWS credentials and region in variables as Lambda provides them,
// no AWS config files and no instance metadata. Nothing is contacted: the
// process ends in lambda.Start.
func startupEnv(root, dir string) ([]string, error) {
	samconfig, err := os.ReadFile(filepath.Join(root, "samconfig.toml"))
	if err != nil {
		return nil, err
	}
	vars, err := templateVariables(licenseadmin.Template, string(samconfig))
	if err != nil {
		return nil, err
	}
	none := filepath.Join(dir, "no-such-file")
	env := []string{
		"HOME=" + dir,
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=bench",
		"AWS_SECRET_ACCESS_KEY=bench",
		"AWS_SESSION_TOKEN=bench",
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_LAMBDA_FUNCTION_NAME=bench",
	}
	names := slices.Sorted(maps.Keys(vars))
	for _, k := range names {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}

// templateVariables returns the union of the environment variables of the
// template's Globals and functions, resolved as a deployment would: a
// parameter takes the value samconfig.toml's default deployment gives it,
// else its default; a resource reference takes a name of the right shape
// (a queue URL for a queue); pseudo parameters and !Sub are filled in.
func templateVariables(tpl []byte, samconfig string) (map[string]string, error) {
	var doc struct {
		Parameters map[string]struct {
			Default yaml.Node `yaml:"Default"`
		} `yaml:"Parameters"`
		Globals struct {
			Function struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Function"`
		} `yaml:"Globals"`
		Resources map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(tpl, &doc); err != nil {
		return nil, fmt.Errorf("read template.yaml: %w", err)
	}
	overrides := parameterOverrides(samconfig)
	const (
		stack   = "license-admin"
		region  = "us-east-1"
		account = "123456789012"
	)
	ref := func(name string) string {
		switch name {
		case "AWS::StackName":
			return stack
		case "AWS::Region":
			return region
		case "AWS::AccountId":
			return account
		case "AWS::Partition":
			return "aws"
		case "AWS::URLSuffix":
			return "amazonaws.com"
		}
		if v, ok := overrides[name]; ok {
			return v
		}
		if p, ok := doc.Parameters[name]; ok {
			if p.Default.Kind == yaml.ScalarNode {
				return p.Default.Value
			}
			return "bench"
		}
		if r, ok := doc.Resources[name]; ok && r.Type == "AWS::SQS::Queue" {
			return "https://sqs." + region + ".amazonaws.com/" + account + "/" + stack + "-" + name
		}
		return stack + "-" + name
	}
	getAtt := func(s string) string {
		res, attr, _ := strings.Cut(s, ".")
		if attr == "Arn" {
			return "arn:aws:bench:" + region + ":" + account + ":" + ref(res)
		}
		return ref(res)
	}
	sub := func(s string) string {
		var out strings.Builder
		for {
			i := strings.Index(s, "${")
			j := strings.Index(s[max(i, 0):], "}")
			if i < 0 || j < 0 {
				out.WriteString(s)
				return out.String()
			}
			name := s[i+2 : i+j]
			out.WriteString(s[:i])
			if strings.Contains(name, ".") {
				out.WriteString(getAtt(name))
			} else {
				out.WriteString(ref(name))
			}
			s = s[i+j+1:]
		}
	}
	value := func(n yaml.Node) string {
		switch {
		case n.Tag == "!Ref":
			return ref(n.Value)
		case n.Tag == "!Sub" && n.Kind == yaml.ScalarNode:
			return sub(n.Value)
		case n.Tag == "!GetAtt" && n.Kind == yaml.ScalarNode:
			return getAtt(n.Value)
		case n.Kind == yaml.ScalarNode && (n.Tag == "" || strings.HasPrefix(n.Tag, "!!")):
			return n.Value
		}
		return "bench"
	}
	vars := map[string]string{}
	for k, n := range doc.Globals.Function.Environment.Variables {
		vars[k] = value(n)
	}
	ids := slices.Sorted(maps.Keys(doc.Resources))
	for _, id := range ids {
		r := doc.Resources[id]
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		for k, n := range r.Properties.Environment.Variables {
			if _, seen := vars[k]; !seen {
				vars[k] = value(n)
			}
		}
	}
	return vars, nil
}

// parameterOverrides reads the parameter_overrides of samconfig.toml's
// [default.deploy.parameters] ("Name=value Name=value"); values are plain
// words in this project's file.
func parameterOverrides(samconfig string) map[string]string {
	out := map[string]string{}
	section := ""
	for _, line := range strings.Split(samconfig, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[default.deploy.parameters]" || strings.TrimSpace(k) != "parameter_overrides" {
			continue
		}
		for _, kv := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
			if name, val, ok := strings.Cut(kv, "="); ok {
				out[name] = val
			}
		}
	}
	return out
}

// quoteArgs quotes the arguments that hold spaces, as a shell needs.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsRune(a, ' ') {
			a = `"` + a + `"`
		}
		out[i] = a
	}
	return out
}
