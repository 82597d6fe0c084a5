package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/infra/dynamolocal"
	"licenseadmin/infra/seslocal"
)

// TestQueueHandlersMatchTemplate ensures every template function fed by a
// queue is served by the local queues with the very handler expression its
// main starts, and that the registry names no other function.
func TestQueueHandlersMatchTemplate(t *testing.T) {
	root, tpl, dirs := project(t)
	sources, err := tpl.QueueSources()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sources {
		ids = append(ids, s.Function)
	}
	checkRegistry(t, root, dirs, "infra/local/queues.go", "queue", ids)
}

// TestUsageCommand ensures `usage` puts an event on the local usage queue
// of `run` with the real SQS client, that the local queue delivers it to
// the ingest function, and that the user then reads it in its log; and
// that it explains its mistakes.
func TestUsageCommand(t *testing.T) {
	client, _ := dynamolocal.NewTable(t)
	table := "usage-test-" + randomHex(4)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	endpoint := aws.ToString(client.Options().BaseEndpoint)
	t.Setenv("DYNAMODB_ENDPOINT", endpoint)
	t.Setenv("SES_ENDPOINT", seslocal.Shared(t).Endpoint)
	root, _, _, _ := newRoot(t)
	vars := map[string]string{"API_ADDR": "127.0.0.1:0", "TABLE_NAME": table, "S3_PORT": "0", "SQS_PORT": "0", "DYNAMODB_ENDPOINT": endpoint}
	var stdout, stderr syncBuffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }, dir: root}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- dispatch(ctx, []string{"run"}, e) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Error("run did not stop")
		}
	})

	lines := regexp.MustCompile(`(?m)^API:\s+(http://\S+)$[\s\S]*^SQS:\s+(http://\S+) `)
	var api, sqs string
	for deadline := time.Now().Add(time.Minute); api == ""; {
		if m := lines.FindStringSubmatch(stdout.String()); m != nil {
			api, sqs = m[1], m[2]
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("run exited with %d: %s%s", code, stdout.String(), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not print its API and SQS addresses: %s", stdout.String())
		}
	}
	vars["SQS_ENDPOINT"] = sqs

	command := func(args ...string) (int, string, string) {
		var out, errOut syncBuffer
		code := dispatch(ctx, args, &env{stdout: &out, stderr: &errOut, getenv: e.getenv, dir: root})
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
		sent.QueueURL != sqs+"/"+localAccountID+"/UsageQueue" {
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
	for deadline := time.Now().Add(20 * time.Second); len(page.Items) == 0; time.Sleep(100 * time.Millisecond) {
		resp, body := do(t, newRequest(t, http.MethodGet, api+"/v1/me/logs", nil, tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/me/logs: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event did not reach the log: %s\n%s", stdout.String(), stderr.String())
		}
	}
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

// TestStreamHandlersMatchTemplate ensures every function that the
// template gives a DynamoDB stream event is fed by the local stream with
// the very handler expression its main starts, and no other function.
func TestStreamHandlersMatchTemplate(t *testing.T) {
	root, tpl, dirs := project(t)
	ids, err := tpl.StreamFunctions()
	if err != nil {
		t.Fatal(err)
	}
	checkRegistry(t, root, dirs, "infra/local/email.go", "stream", ids)
}
