package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/streamlocal"
	"licenseadmin/shared/licadmin"
)

// SamTestCmd is the sam local suite (make test-sam-local): against the
// local stack and the sample world, with the bootstrap binaries that sam
// build produced, it sends requests through sam local start-api and events
// through sam local invoke, checks each answer and what it changed, and
// ends with "N passed, N failed" and the time it took. It fails when any
// check failed.
func SamTestCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "sam-test")
	image := fs.String("invoke-image", "", "a local image to run the functions in, with --skip-pull-image (offline machines)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError{Msg: "sam-test takes no arguments"}
	}
	start := time.Now()
	port, err := freePort()
	if err != nil {
		return err
	}
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s, err := startSAMStack(ctx, e, apiAddr)
	if err != nil {
		return err
	}
	defer s.stop(e)
	logPath := filepath.Join(s.root, ".local", "sam-test.log")
	samLog, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer samLog.Close()
	sam := newSAMCLI(e, s.root, *image)
	sam.out = samLog
	fmt.Fprintf(e.Stdout, "sam local start-api on %s (SAM CLI's output: %s)\n", apiAddr, logPath)
	api, err := sam.startAPI(ctx, port)
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, logPath)
	}
	defer func() { _ = api.Stop("sam local start-api", 20*time.Second) }()

	t := &samSuite{e: e, base: "http://" + apiAddr, s: s, sam: sam, ctx: ctx}
	t.token, err = IssueToken(s.key, sampleAdmin, true, time.Now())
	if err != nil {
		return err
	}
	t.run()
	fmt.Fprintf(e.Stdout, "%d passed, %d failed in %s\n", t.passed, t.failed, time.Since(start).Round(time.Second))
	if t.failed > 0 {
		return fmt.Errorf("%d sam local checks failed (SAM CLI's output: %s)", t.failed, logPath)
	}
	return nil
}

// samSuite holds the suite's state: the API's address, the admin's token,
// the ids the steps create, and the counts.
type samSuite struct {
	e              *cli.Env
	ctx            context.Context
	base, token    string
	s              *samStack
	sam            *samCLI
	passed, failed int
	u1, u2         string
}

// check runs one named check and reports it.
func (t *samSuite) check(name string, f func() error) {
	start := time.Now()
	err := f()
	took := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		t.failed++
		fmt.Fprintf(t.e.Stdout, "FAIL %s (%s): %v\n", name, took, err)
		return
	}
	t.passed++
	fmt.Fprintf(t.e.Stdout, "ok   %s (%s)\n", name, took)
}

// call sends a request through sam local start-api as the seeded admin
// (no token when auth is false) and decodes a JSON answer into out.
func (t *samSuite) call(method, path string, body any, auth bool, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.ctx, method, t.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w in %s", method, path, err, b)
		}
	}
	return nil
}

func (t *samSuite) pool() (*licadmin.Pool, error) {
	var p licadmin.Pool
	return &p, t.call(http.MethodGet, "/v1/licenses", nil, true, http.StatusOK, &p)
}

// wantPool checks the assigned counter of each tier.
func (t *samSuite) wantPool(assigned map[licadmin.Tier]int64, purchased map[licadmin.Tier]int64) error {
	p, err := t.pool()
	if err != nil {
		return err
	}
	for _, tier := range licadmin.Tiers {
		got := p.Tier(tier)
		if got.Assigned != assigned[tier] || got.Purchased != purchased[tier] || got.Available != got.Purchased-got.Assigned {
			return fmt.Errorf("%s: %+v, want purchased %d, assigned %d", tier, got, purchased[tier], assigned[tier])
		}
	}
	return nil
}

func (t *samSuite) run() {
	n := int64(sampleLicenses)
	purchased := map[licadmin.Tier]int64{licadmin.Eco: n, licadmin.Advanced: n, licadmin.Pro: n}
	t.check("start-api: no token answers the gateway's 401", func() error {
		var body map[string]string
		if err := t.call(http.MethodGet, "/v1/licenses", nil, false, http.StatusUnauthorized, &body); err != nil {
			return err
		}
		if body["message"] != "Unauthorized" {
			return fmt.Errorf("body %v", body)
		}
		return nil
	})
	t.check("start-api: pool summary", func() error {
		return t.wantPool(map[licadmin.Tier]int64{licadmin.Pro: 1}, purchased)
	})
	user := func(email string, id *string) func() error {
		return func() error {
			var u licadmin.User
			if err := t.call(http.MethodPost, "/v1/users", map[string]string{"email": email, "firstName": "Sam", "lastName": "Local", "language": "en"}, true, http.StatusCreated, &u); err != nil {
				return err
			}
			if u.Email != email || u.ID == "" || u.Status != licadmin.StatusPending {
				return fmt.Errorf("created %+v", u)
			}
			*id = u.ID
			return nil
		}
	}
	t.check("start-api: add a user", user("sam.one@acme.test", &t.u1))
	t.check("start-api: add a second user", user("sam.two@acme.test", &t.u2))
	license := func(method, path string, body any, tier licadmin.Tier) func() error {
		return func() error {
			var u licadmin.User
			if err := t.call(method, path, body, true, http.StatusOK, &u); err != nil {
				return err
			}
			if (tier == "") != (u.License == nil) || (u.License != nil && u.License.Tier != tier) {
				return fmt.Errorf("license %+v, want %q", u.License, tier)
			}
			return nil
		}
	}
	t.check("start-api: assign", func() error {
		return license(http.MethodPost, "/v1/users/"+t.u1+"/license", map[string]string{"tier": "eco"}, licadmin.Eco)()
	})
	t.check("start-api: modify", func() error {
		return license(http.MethodPatch, "/v1/users/"+t.u1+"/license", map[string]string{"tier": "advanced"}, licadmin.Advanced)()
	})
	t.check("start-api: transfer", func() error {
		return license(http.MethodPost, "/v1/users/"+t.u1+"/license/transfer", map[string]string{"toUserId": t.u2}, licadmin.Advanced)()
	})
	t.check("start-api: remove", func() error {
		return license(http.MethodDelete, "/v1/users/"+t.u2+"/license", nil, "")()
	})
	t.check("start-api: list users with a filter", func() error {
		var page struct {
			Items []licadmin.User `json:"items"`
		}
		if err := t.call(http.MethodGet, "/v1/users?license=pro", nil, true, http.StatusOK, &page); err != nil {
			return err
		}
		if len(page.Items) != 1 || page.Items[0].Email != sampleUser {
			return fmt.Errorf("pro users %+v, want only %s", page.Items, sampleUser)
		}
		return nil
	})
	t.check("start-api: create an import", func() error {
		var up struct {
			ImportID  string `json:"importId"`
			UploadURL string `json:"uploadUrl"`
		}
		if err := t.call(http.MethodPost, "/v1/imports", map[string]bool{"dryRun": false}, true, http.StatusCreated, &up); err != nil {
			return err
		}
		if up.ImportID == "" || !strings.HasPrefix(up.UploadURL, "http") {
			return fmt.Errorf("answer %+v", up)
		}
		return nil
	})
	t.check("start-api: the activation page", func() error {
		req, _ := http.NewRequestWithContext(t.ctx, http.MethodGet, t.base+"/activate?token="+sampleToken, nil)
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "<form") {
			return fmt.Errorf("%d %s: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		return nil
	})
	t.check("start-api: the pool counters after the changes", func() error {
		return t.wantPool(map[licadmin.Tier]int64{licadmin.Pro: 1}, purchased)
	})

	t.check("invoke: the S3 event of an uploaded CSV creates its users", func() error {
		if err := t.invoke("ImportUsersFunction", "import-users.json"); err != nil {
			return err
		}
		u, err := t.s.a.Store.FindUser(t.ctx, "", sampleImportedUser)
		if err != nil || u == nil || u.License == nil || u.License.Tier != licadmin.Eco {
			return fmt.Errorf("the imported user: %+v (%v)", u, err)
		}
		return nil
	})
	t.check("invoke: the table-stream event of an assignment sends its email", func() error {
		if err := t.invoke("ProcessTableStreamFunction", "process-table-stream.json"); err != nil {
			return err
		}
		mail, err := t.s.mail.EmailsTo(t.ctx, sampleUser)
		if err != nil || len(mail) == 0 {
			return fmt.Errorf("no email to %s in the SES emulator (%v)", sampleUser, err)
		}
		return nil
	})
	t.check("invoke: the SQS usage event writes its log entry", func() error {
		// The ingest function writes claims; the recording function, on
		// the table's stream, turns them into log entries. sam local runs
		// no stream: the claims' records are read here and handed to the
		// recording function as the stream would hand them.
		db := t.s.a.DynamoDB
		stream := &streamlocal.Poller{DynamoDB: db, Streams: streamlocal.NewStreamsClient(db), Table: t.s.a.Store.Table}
		if _, err := stream.Next(t.ctx); err != nil {
			return fmt.Errorf("read the table's stream: %w", err)
		}
		if err := t.invoke("IngestUsageFunction", "ingest-usage.json"); err != nil {
			return err
		}
		recs, err := stream.Next(t.ctx)
		if err != nil {
			return fmt.Errorf("read the table's stream: %w", err)
		}
		var claims []events.DynamoDBEventRecord
		for _, r := range recs {
			if r.EventName == "INSERT" && strings.HasPrefix(r.Change.Keys["pk"].String(), "USAGE#") {
				claims = append(claims, r)
			}
		}
		b, err := json.Marshal(events.DynamoDBEvent{Records: claims})
		if err != nil {
			return err
		}
		event := filepath.Join(t.s.root, ".local", "record-usage-event.json")
		if err := os.WriteFile(event, b, 0o600); err != nil {
			return err
		}
		if err := t.invokeFile("RecordUsageFunction", event); err != nil {
			return err
		}
		var page struct {
			Items []licadmin.LogEntry `json:"items"`
		}
		if err := t.call(http.MethodGet, "/v1/users/"+sampleUserID+"/logs?from=2026-11-01&to=2026-11-30", nil, true, http.StatusOK, &page); err != nil {
			return err
		}
		// The sample batch holds two events of one message: sent, opened.
		if len(page.Items) != 2 || page.Items[0].MessageRef != "msg-7f3a9c" || page.Items[1].MessageRef != "msg-7f3a9c" {
			return fmt.Errorf("log entries %+v, want the batch's two", page.Items)
		}
		return nil
	})
	t.check("invoke: an operator function adds licenses", func() error {
		if err := t.invoke("AddLicensesFunction", "add-licenses.json"); err != nil {
			return err
		}
		p, err := t.s.a.Store.Pool(t.ctx, sampleAccount)
		if err != nil {
			return err
		}
		if got := p.Tier(licadmin.Pro).Purchased; got != n+10 {
			return fmt.Errorf("pro purchased %d, want %d", got, n+10)
		}
		return nil
	})
}

// invoke runs sam local invoke of fn with a sample event and fails on an
// error answer.
func (t *samSuite) invoke(fn, event string) error {
	return t.invokeFile(fn, filepath.Join("infra", "events", event))
}

// invokeFile runs sam local invoke of fn with the event in file and fails
// on an error answer.
func (t *samSuite) invokeFile(fn, file string) error {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Minute)
	defer cancel()
	cmd := t.sam.command(ctx, "local", "invoke", fn, "-e", file,
		"--env-vars", filepath.Join(t.s.root, samInvokeEnvFile))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, t.sam.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sam local invoke %s: %w: %s", fn, err, stdout.String())
	}
	out := strings.TrimSpace(stdout.String())
	if strings.Contains(out, `"errorMessage"`) || strings.Contains(out, `"batchItemFailures":[{`) {
		return fmt.Errorf("%s answered %s", fn, out)
	}
	return nil
}
