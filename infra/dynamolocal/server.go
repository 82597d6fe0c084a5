package dynamolocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/localproc"
	"licenseadmin/infra/tail"
)

// StartTimeout bounds how long Start waits for DynamoDB Local to answer; a
// cold JVM usually needs one to three seconds.
const StartTimeout = 60 * time.Second

// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Options says how to start DynamoDB Local.
type Options struct {
	// Port is the TCP port to listen on; 0 picks a free one.
	Port int
	// Dir is where to start looking for infra/node_modules (the repository
	// root, infra/, or any directory below them); "" is the working
	// directory.
	Dir string
	// Stdout receives DynamoDB Local's output; nil discards it (the last
	// lines still appear in Start's error if it fails).
	Stdout io.Writer
	// DataDir keeps the database in that directory (created if missing)
	// across restarts; "" keeps it in memory, gone when it stops.
	DataDir string
}

// Server is a running DynamoDB Local, or an external endpoint named by
// DYNAMODB_ENDPOINT.
type Server struct {
	// Endpoint is the URL clients use, such as http://127.0.0.1:8000.
	Endpoint string

	proc *localproc.Process // nil for an external endpoint
}

// Start runs DynamoDB Local in memory, or in Options.DataDir (one shared
// database for every credential and region, so that all local clients see
// the same tables) and
// returns once it answers requests, or after StartTimeout.
//
// If DYNAMODB_ENDPOINT is set, Start starts nothing and returns a Server for
// that endpoint. It returns an error wrapping ErrJavaMissing or
// ErrJarMissing when the runtime or the jar is missing, and an error naming
// the port when a fixed port is taken.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if ep := os.Getenv("DYNAMODB_ENDPOINT"); ep != "" {
		return &Server{Endpoint: ep}, nil
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrJavaMissing
	}
	jar, lib, err := findJar(opts.Dir)
	if err != nil {
		return nil, err
	}
	// A free port found by the kernel may be taken again before the JVM
	// binds it; try a few times then.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	for i := 1; ; i++ {
		s, err := start(ctx, java, jar, lib, opts)
		if err == nil || i == attempts || ctx.Err() != nil {
			return s, err
		}
	}
}

func start(ctx context.Context, java, jar, lib string, opts Options) (*Server, error) {
	port, err := pickPort(opts.Port)
	if err != nil {
		return nil, err
	}
	out := tail.New(4 << 10)
	var w io.Writer = out
	if opts.Stdout != nil {
		w = io.MultiWriter(out, opts.Stdout)
	}
	storage := []string{"-inMemory"}
	if opts.DataDir != "" {
		dir, err := filepath.Abs(opts.DataDir)
		if err == nil {
			err = os.MkdirAll(dir, 0o700)
		}
		if err != nil {
			return nil, fmt.Errorf("DynamoDB Local data directory: %w", err)
		}
		storage = []string{"-dbPath", dir}
	}
	args := append([]string{"-Djava.library.path=" + lib, "-jar", jar}, storage...)
	cmd := exec.Command(java, append(args, "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))...)
	cmd.Dir = os.TempDir()
	cmd.Stdout, cmd.Stderr = w, w
	proc, err := localproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start DynamoDB Local: %w", err)
	}
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), proc: proc}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("start DynamoDB Local on port %d: %w\n%s", port, err, out)
	}
	return s, nil
}

// pickPort returns port if it is free on the loopback interface, or a free
// port when port is 0.
func pickPort(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("start DynamoDB Local: port %d is in use (stop whatever holds it, or set DYNAMODB_ENDPOINT to use a running DynamoDB): %w", port, err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("start DynamoDB Local: %w", err)
	}
	return port, nil
}

// waitReady polls ListTables until DynamoDB Local answers, the process
// exits, ctx ends or StartTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	client, err := Client(ctx, s.Endpoint, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		// Refused connections fail at once; the first accepted request can
		// take seconds while the JVM warms up, so give it room.
		callCtx, callCancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := client.ListTables(callCtx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		callCancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Done():
			return fmt.Errorf("the process exited before answering (%v)", s.proc.Err())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("no answer within %s (last error: %v)", StartTimeout, err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Stop ends DynamoDB Local and its children (the whole process group) and
// waits for them: SIGTERM, then SIGKILL after a grace period. It is a no-op
// for an external endpoint, and safe to call more than once.
func (s *Server) Stop() error {
	if s == nil || s.proc == nil {
		return nil
	}
	return s.proc.Stop("DynamoDB Local", stopTimeout)
}
