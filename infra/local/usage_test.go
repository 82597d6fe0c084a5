package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"licenseadmin/infra/stack"
	"licenseadmin/shared/apitest"
)

// TestUsageCommand ensures `usage` puts an event on the local usage queue
// of `run` with the real SQS client, that the local queue delivers it to
// the ingest function, and that the user then reads it in its log; and
// that it explains its mistakes.
func TestUsageCommand(t *testing.T) {
	vars := map[string]string{}
	st := apitest.StartStack(t, stack.Run, vars)
	sqs, e, ctx := st.SQS, st.Env, context.Background()
	getenv := e.Getenv
	e = &env{Stdout: e.Stdout, Stderr: e.Stderr, Dir: e.Dir, Getenv: func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		return getenv(k)
	}}
	vars["SQS_ENDPOINT"] = sqs

	command := func(args ...string) (int, string, string) {
		var out, errOut apitest.SyncBuffer
		code := dispatch(ctx, args, &env{Stdout: &out, Stderr: &errOut, Getenv: e.Getenv, Dir: e.Dir})
		return code, out.String(), errOut.String()
	}
	if code, _, errOut := command("account", "create", "--name", "Acme", "--admin", "admin@acme.test"); code != 0 {
		t.Fatalf("account create: %d %s", code, errOut)
	}
	code, out, errOut := command("usage", "--email", "Admin@ACME.test", "--type", "sent", "--ip", "192.0.2.44", "--to", "a@example.org, b@example.org")
	if code != 0 {
		t.Fatalf("usage: exit %d: %s", code, errOut)
	}
	var sent struct {
		MessageID string `json:"messageId"`
		QueueURL  string `json:"queueUrl"`
		Event     struct {
			EventID   string `json:"eventId"`
			AccountID string `json:"accountId"`
		} `json:"event"`
	}
	if err := json.Unmarshal([]byte(out), &sent); err != nil || sent.MessageID == "" || sent.Event.EventID == "" || sent.Event.AccountID == "" ||
		sent.QueueURL != sqs+"/"+stack.LocalAccountID+"/UsageQueue" {
		t.Fatalf("usage printed %q (%v)", out, err)
	}

	_, tokOut, _ := command("token", "admin@acme.test")
	tok := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(tokOut)[1]
	var page struct {
		Items []struct {
			ID         string   `json:"id"`
			Type       string   `json:"type"`
			SourceIP   string   `json:"sourceIp"`
			Recipients []string `json:"recipients"`
		} `json:"items"`
	}
	st.Poll(t, "/v1/me/logs", tok, 20*time.Second, &page, func() bool { return len(page.Items) > 0 })
	if it := page.Items[0]; len(page.Items) != 1 || it.ID != sent.Event.EventID || it.Type != "sent" || it.SourceIP != "192.0.2.44" || len(it.Recipients) != 2 {
		t.Fatalf("log %+v, want the event sent", page.Items)
	}

	if code, _, errOut := command("usage", "--email", "nobody@acme.test", "--type", "sent"); code != 1 || !strings.Contains(errOut, "no user has the email nobody@acme.test") {
		t.Errorf("usage for an unknown email: exit %d %q", code, errOut)
	}
	if code, _, errOut := command("usage", "--email", "admin@acme.test"); code != 2 || !strings.Contains(errOut, "--type") {
		t.Errorf("usage without --type: exit %d %q", code, errOut)
	}
	if code, _, errOut := command("usage", "--email", "admin@acme.test", "--type", "sent", "--ip", "nope"); code != 2 || !strings.Contains(errOut, "ip") {
		t.Errorf("usage with a bad IP: exit %d %q", code, errOut)
	}
	vars["SQS_ENDPOINT"] = "http://127.0.0.1:1"
	if code, _, errOut := command("usage", "--email", "admin@acme.test", "--type", "opened"); code != 1 || !strings.Contains(errOut, "make run") {
		t.Errorf("usage without a local queue: exit %d %q", code, errOut)
	}
}
