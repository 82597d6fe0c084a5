// Package seslocal runs the SES emulator (the npm package aws-ses-v2-local,
// pinned in infra/package.json) for the local stack and for tests, and
// reads the mail it stored. The emulator accepts SES's SendEmail (API v1
// like SES, keeps every message in memory, shows them in a web inbox at its
// root URL and lists them as JSON at GET /store.
//
// Start launches one emulator; Shared gives a test binary one, started on
// first use. Setting SES_ENDPOINT makes both use that endpoint instead of
// starting anything.
package seslocal

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"licenseadmin/infra/localproc"
	"licenseadmin/infra/tail"
)

// DefaultPort is the emulator's port in the local stack (docs/local.md).
const DefaultPort = 8005

// StartTimeout bounds how long Start waits for the emulator to answer.
const StartTimeout = 30 * time.Second

// ErrMissing is returned by Start when the emulator is not installed.
var ErrMissing = errors.New("the SES emulator is not installed: run `make tools` (or `npm ci --prefix infra`) to install infra/node_modules/aws-ses-v2-local")

// ErrNodeMissing is returned by Start when no node executable is on PATH.
var ErrNodeMissing = errors.New("node not found on PATH: the SES emulator needs Node.js 20 or later (e.g. `apt-get install nodejs`)")

// cliPaths are where the emulator's command is, relative to the repository
// root or to infra/.
var cliPaths = []string{
	"infra/node_modules/aws-ses-v2-local/dist/cli.js",
	"node_modules/aws-ses-v2-local/dist/cli.js",
}

// Options says how to start the emulator.
type Options struct {
	// Port to listen on; 0 picks a free one.
	Port int
	// Host is the address to listen on; "" is 127.0.0.1. The functions
	// that SAM CLI runs in Docker reach the machine through the bridge's
	// gateway address, so the sam local stack listens there.
	Host string
	// Dir is where to start looking for infra/node_modules; "" is the
	// working directory.
	Dir string
	// Stdout receives the emulator's output; nil discards it.
	Stdout io.Writer
}

// Server is a running emulator, or the external one SES_ENDPOINT names.
type Server struct {
	// Endpoint is the URL of the SES API and of the inbox, such as
	// http://127.0.0.1:8005.
	Endpoint string

	proc *localproc.Process // nil for an external emulator
}

// Start runs the emulator and returns once it answers. It returns an error
// wrapping ErrNodeMissing or ErrMissing when Node or the package is
// missing, and one naming the port when a fixed port is taken.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if ep := os.Getenv("SES_ENDPOINT"); ep != "" {
		return &Server{Endpoint: strings.TrimRight(ep, "/")}, nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, ErrNodeMissing
	}
	cli, err := findCLI(opts.Dir)
	if err != nil {
		return nil, err
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	if opts.Port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(opts.Port)))
		if err != nil {
			return nil, fmt.Errorf("start the SES emulator: port %d is in use (stop whatever holds it, or set SES_ENDPOINT to use a running emulator): %w", opts.Port, err)
		}
		_ = l.Close()
	}
	cmd := exec.Command(node, cli, "--host", host, "--port", strconv.Itoa(opts.Port))
	cmd.Dir = filepath.Dir(cli)
	// SMTP relaying stays off whatever the environment says.
	cmd.Env = append(os.Environ(), "SMTP_TRANSPORT=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start the SES emulator: %w", err)
	}
	stderr := tail.New(4 << 10)
	cmd.Stderr = stderr
	proc, err := localproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start the SES emulator: %w", err)
	}
	s := &Server{proc: proc}
	addr := make(chan string, 1)
	go func() {
		// "aws-ses-v2-local: server running at http://localhost:8005"
		running := regexp.MustCompile(`server running at \S+:(\d+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if opts.Stdout != nil {
				fmt.Fprintln(opts.Stdout, line)
			}
			if m := running.FindStringSubmatch(line); m != nil {
				select {
				case addr <- "http://" + net.JoinHostPort(host, m[1]):
				default:
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	select {
	case s.Endpoint = <-addr:
	case <-proc.Done():
		return nil, fmt.Errorf("start the SES emulator: it exited (%v): %s", proc.Err(), stderr.String())
	case <-ctx.Done():
		_ = s.Stop()
		return nil, fmt.Errorf("start the SES emulator: no answer within %s: %s", StartTimeout, stderr.String())
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("start the SES emulator: %w: %s", err, stderr.String())
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/health-check", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health check: %v", err)
		case <-s.proc.Done():
			return fmt.Errorf("it exited (%v)", s.proc.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the emulator and waits for it; a no-op for an external one,
// and safe to call more than once.
func (s *Server) Stop() error {
	if s == nil || s.proc == nil {
		return nil
	}
	return s.proc.Stop("the SES emulator", 5*time.Second)
}

// Email is one message the emulator stored.
type Email struct {
	MessageID   string `json:"messageId"`
	From        string `json:"from"`
	Destination struct {
		To  []string `json:"to"`
		Cc  []string `json:"cc"`
		Bcc []string `json:"bcc"`
	} `json:"destination"`
	Subject string `json:"subject"`
	Body    struct {
		Text string `json:"text"`
		HTML string `json:"html"`
	} `json:"body"`
	// At is when it was sent, in epoch seconds.
	At int64 `json:"at"`
}

// Emails returns every message the emulator stored, oldest first.
func (s *Server) Emails(ctx context.Context) ([]Email, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/store", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the SES emulator's store: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the SES emulator's store: status %d", resp.StatusCode)
	}
	var store struct {
		Emails []Email `json:"emails"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
		return nil, fmt.Errorf("read the SES emulator's store: %w", err)
	}
	return store.Emails, nil
}

// EmailsTo returns the stored messages to address (case-insensitive).
func (s *Server) EmailsTo(ctx context.Context, address string) ([]Email, error) {
	all, err := s.Emails(ctx)
	if err != nil {
		return nil, err
	}
	var out []Email
	for _, e := range all {
		for _, to := range e.Destination.To {
			if strings.EqualFold(to, address) {
				out = append(out, e)
				break
			}
		}
	}
	return out, nil
}

// findCLI looks for the emulator's cli.js from dir and its parents.
func findCLI(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", fmt.Errorf("find the SES emulator: %w", err)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find the SES emulator: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, p := range cliPaths {
			if _, err := os.Stat(filepath.Join(d, p)); err == nil {
				return filepath.Join(d, p), nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w (searched from %s up)", ErrMissing, dir)
		}
	}
}
