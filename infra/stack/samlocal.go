package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"licenseadmin"
	"licenseadmin/infra/cli"
	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/localproc"
	"licenseadmin/infra/seslocal"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
	"licenseadmin/shared/localauth"
)

// The env files that sam local is given, generated under .local/ (never
// edited by hand): samEnvFile for start-api, where functions check bearer
// tokens themselves against the local public key it names, and
// samInvokeEnvFile for invoke, whose sample events carry the claims API
// Gateway would have verified.
const (
	samEnvFile       = ".local/sam-env.json"
	samInvokeEnvFile = ".local/sam-invoke-env.json"
)

// samStack is the local stack of functions that SAM CLI runs in Docker:
// DynamoDB Local with the template's table, the SES emulator, the S3 store
// and the queues (their consumers in this process, as in `run`), all
// reachable from containers. Nothing in this process handles the table's
// stream or the S3 store's uploads: that is the functions' part, through
// sam local invoke.
type samStack struct {
	root string
	// host is the address the services listen on; containerHost is how a
	// container names this machine (the same on Linux: the Docker bridge's
	// gateway; host.docker.internal on macOS and Windows).
	host, containerHost string
	ddb                 *dynamolocal.Server
	mail                *seslocal.Server
	queues              *localQueues
	files               *localS3
	key                 *SigningKey
	cfg                 app.Config
	a                   *app.App
}

// samHosts returns where the services listen and how containers reach
// them: LISTEN_HOST when set; on Linux the default bridge's gateway
// address, which containers reach and nothing outside this machine does.
func samHosts(ctx context.Context, e *cli.Env) (host, containerHost string, err error) {
	if runtime.GOOS != "linux" {
		// Docker Desktop forwards host.docker.internal to the host's loopback.
		return "127.0.0.1", "host.docker.internal", nil
	}
	if h := e.Getenv("LISTEN_HOST"); h != "" {
		return h, h, nil
	}
	out, err := exec.CommandContext(ctx, "docker", "network", "inspect", "bridge", "--format",
		`{{range .IPAM.Config}}{{.Gateway}}{{end}} {{index .Options "com.docker.network.bridge.name"}}`).Output()
	if err != nil {
		return "", "", fmt.Errorf("find the Docker bridge's gateway address (is dockerd running? or set LISTEN_HOST): %w", err)
	}
	h, bridge, _ := strings.Cut(strings.TrimRight(string(out), "\n"), " ")
	if h == "" {
		// Older daemons leave the gateway out of the network's IPAM
		// configuration: it is the address of the bridge's interface.
		h = interfaceIPv4(strings.TrimSpace(bridge))
	}
	if net.ParseIP(h) == nil {
		return "", "", fmt.Errorf("the Docker bridge's gateway is %q, not an address (set LISTEN_HOST)", h)
	}
	return h, h, nil
}

// interfaceIPv4 returns the first IPv4 address of the interface name, "" if
// none.
func interfaceIPv4(name string) string {
	if name == "" {
		name = "docker0"
	}
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// startSAMStack starts the services on free ports, creates the table with
// the sample world in it, and writes both env files.
func startSAMStack(ctx context.Context, e *cli.Env, apiAddr string) (_ *samStack, err error) {
	root, err := dynamolocal.ModuleRoot(e.Dir)
	if err != nil {
		return nil, err
	}
	s := &samStack{root: root}
	defer func() {
		if err != nil {
			s.stop(e)
		}
	}()
	if s.host, s.containerHost, err = samHosts(ctx, e); err != nil {
		return nil, err
	}
	if s.key, err = LoadOrCreateKey(root); err != nil {
		return nil, err
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return nil, err
	}
	// Free ports, on the address containers reach.
	se := &cli.Env{Stdout: e.Stdout, Stderr: e.Stderr, Dir: e.Dir, Getenv: func(name string) string {
		switch name {
		case "LISTEN_HOST":
			return s.host
		case "SES_PORT", "S3_PORT", "SQS_PORT":
			return "0"
		case "PUBLIC_BASE_URL":
			return "http://" + apiAddr
		}
		return e.Getenv(name)
	}}
	if s.cfg, err = AppConfig(se); err != nil {
		return nil, err
	}
	if s.ddb, err = dynamolocal.Start(ctx, dynamolocal.Options{Dir: root}); err != nil {
		return nil, err
	}
	s.cfg.DynamoDBEndpoint = s.ddb.Endpoint
	client, err := dynamolocal.Client(ctx, s.ddb.Endpoint)
	if err != nil {
		return nil, err
	}
	if _, err := dynamolocal.EnsureTable(ctx, client, s.cfg.TableName); err != nil {
		return nil, err
	}
	if s.mail, err = startEmail(ctx, se, root, &s.cfg); err != nil {
		return nil, err
	}
	if s.queues, err = listenQueues(se, tpl, &s.cfg); err != nil {
		return nil, err
	}
	if s.files, err = startS3(se, tpl, &s.cfg, ""); err != nil {
		return nil, err
	}
	if s.a, err = app.New(ctx, s.cfg); err != nil {
		return nil, err
	}
	s.a.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := s.queues.serve(ctx, sameApp(s.a), slog.New(slog.NewTextHandler(e.Stderr, nil)).With("component", "sqs")); err != nil {
		return nil, err
	}
	if err := seedSamples(ctx, s.a, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("seed the sample world: %w", err)
	}
	pub, err := localauth.PublicKeyPEM(&s.key.private.PublicKey)
	if err != nil {
		return nil, err
	}
	vars := s.functionEnv()
	if err := writeEnvFile(filepath.Join(root, samInvokeEnvFile), vars); err != nil {
		return nil, err
	}
	vars[localauth.EnvPublicKey] = string(pub)
	if err := writeEnvFile(filepath.Join(root, samEnvFile), vars); err != nil {
		return nil, err
	}
	return s, nil
}

// functionEnv returns the functions' variables: the template's, pointed at
// this stack as containers reach it. sam local passes only the variables a
// function declares, so one set serves every function.
func (s *samStack) functionEnv() map[string]string {
	c := s.cfg
	return map[string]string{
		"TABLE_NAME":        c.TableName,
		"LOG_LEVEL":         "INFO",
		"DYNAMODB_ENDPOINT": s.reach(c.DynamoDBEndpoint),
		"SES_ENDPOINT":      s.reach(c.Email.SESEndpoint),
		"SENDER_EMAIL":      c.Email.SenderEmail,
		"PUBLIC_BASE_URL":   c.Email.PublicBaseURL,
		"S3_ENDPOINT":       s.reach(c.S3.Endpoint),
		"BUCKET_NAME":       c.S3.Bucket,
		"SQS_ENDPOINT":      s.reach(c.Queues.SQSEndpoint),
		"EXPORT_QUEUE_URL":  s.reach(c.Queues.ExportQueueURL),
		"DNS_TIMEOUT":       "3s",
	}
}

// reach rewrites a service URL of this machine to the address containers
// use for it.
func (s *samStack) reach(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	u.Host = net.JoinHostPort(s.containerHost, u.Port())
	return u.String()
}

func writeEnvFile(path string, vars map[string]string) error {
	b, err := json.MarshalIndent(map[string]map[string]string{"Parameters": vars}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func (s *samStack) stop(e *cli.Env) {
	if s.queues != nil {
		s.queues.stop()
	}
	if s.files != nil {
		if err := s.files.stop(); err != nil {
			fmt.Fprintln(e.Stderr, err)
		}
	}
	if s.mail != nil {
		if err := s.mail.Stop(); err != nil {
			fmt.Fprintln(e.Stderr, err)
		}
	}
	if s.ddb != nil {
		if err := s.ddb.Stop(); err != nil {
			fmt.Fprintln(e.Stderr, err)
		}
	}
}

// samCLI is how the local command runs SAM CLI: the project's virtualenv,
// and, in the offline mode, the locally built stand-in of the base image.
type samCLI struct {
	path        string
	invokeImage string
	root        string
	out         io.Writer
}

func newSAMCLI(e *cli.Env, root, invokeImage string) *samCLI {
	path := e.Getenv("SAM")
	if path == "" {
		path = filepath.Join(root, ".venv", "bin", "sam")
	}
	return &samCLI{path: path, invokeImage: invokeImage, root: root, out: e.Stderr}
}

// command returns a sam command run from the repository root (it finds
// the functions that sam build left in .aws-sam/build there).
func (c *samCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	if c.invokeImage != "" {
		args = append(args, "--invoke-image", c.invokeImage, "--skip-pull-image")
	}
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Dir = c.root
	env := os.Environ()
	// Any credentials do for the local services; the region is the stack's.
	for _, kv := range []string{"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=" + dynamolocal.DefaultRegion} {
		if os.Getenv(strings.SplitN(kv, "=", 2)[0]) == "" {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "SAM_CLI_TELEMETRY=0")
	return cmd
}

// startAPI starts sam local start-api on 127.0.0.1:port and waits until it
// accepts connections.
func (c *samCLI) startAPI(ctx context.Context, port int) (*localproc.Process, error) {
	cmd := c.command(context.Background(), "local", "start-api", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--env-vars", filepath.Join(c.root, samEnvFile), "--warm-containers", "LAZY")
	cmd.Stdout, cmd.Stderr = c.out, c.out
	p, err := localproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start sam local start-api (%s; run make tools): %w", c.path, err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
			return p, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("sam local start-api exited: %v", p.Err())
		case <-ctx.Done():
			_ = p.Stop("sam local start-api", 10*time.Second)
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Stop("sam local start-api", 10*time.Second)
			return nil, fmt.Errorf("sam local start-api did not listen on port %d within 3 minutes", port)
		}
	}
}

// freePort returns a port free on the loopback interface.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SamLocalCmd runs the stack, seeds the sample world, and serves every
// route through sam local start-api until Ctrl-C (make sam-local).
func SamLocalCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "sam-local")
	port := fs.Int("port", 3000, "the port of sam local start-api")
	image := fs.String("invoke-image", "", "a local image to run the functions in, with --skip-pull-image (offline machines)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError{Msg: "sam-local takes no arguments"}
	}
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))
	s, err := startSAMStack(ctx, e, apiAddr)
	if err != nil {
		return err
	}
	defer s.stop(e)
	sam := newSAMCLI(e, s.root, *image)
	api, err := sam.startAPI(ctx, *port)
	if err != nil {
		return err
	}
	defer func() { _ = api.Stop("sam local start-api", 20*time.Second) }()
	invokeFlags := ""
	if *image != "" {
		invokeFlags = " --invoke-image " + *image + " --skip-pull-image"
	}
	fmt.Fprintf(e.Stdout, "DynamoDB:  %s (containers: %s)\n", s.ddb.Endpoint, s.reach(s.ddb.Endpoint))
	fmt.Fprintf(e.Stdout, "Email:     %s (inbox; sent mail as JSON at %s/store)\n", s.mail.Endpoint, s.mail.Endpoint)
	fmt.Fprintf(e.Stdout, "S3:        %s (bucket %s)\n", s.files.srv.URL, s.files.bucket)
	fmt.Fprintf(e.Stdout, "SQS:       %s\n", s.queues.endpoint)
	fmt.Fprintf(e.Stdout, "Env files: %s (start-api), %s (invoke)\n", samEnvFile, samInvokeEnvFile)
	fmt.Fprintf(e.Stdout, "Seeded:    account %s, admin %s, users %s and %s\n", sampleAccount, sampleAdmin, sampleUser, sampleOther)
	fmt.Fprintf(e.Stdout, "API:       http://%s (sam local start-api; each function starts in a container on its first request)\n", apiAddr)
	fmt.Fprintf(e.Stdout, "Token:     go run ./infra/local token %s\n", sampleAdmin)
	fmt.Fprintf(e.Stdout, "Invoke:    .venv/bin/sam local invoke AddLicensesFunction -e infra/events/add-licenses.json --env-vars %s%s\n", samInvokeEnvFile, invokeFlags)
	fmt.Fprintf(e.Stdout, "Ctrl-C stops everything.\n")
	select {
	case <-ctx.Done():
	case <-api.Done():
		return fmt.Errorf("sam local start-api exited: %v", api.Err())
	}
	fmt.Fprintln(e.Stdout, "stopping")
	return nil
}
