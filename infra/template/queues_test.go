package template_test

import (
	"strings"
	"testing"

	"licenseadmin/infra/template"
)

// TestQueueSources ensures the SQS events of the project's template are
// read with what the local queues need: the queue, the batch size, the
// batch item failure reporting and the redrive policy.
func TestQueueSources(t *testing.T) {
	tpl := realTemplate(t)
	got, err := tpl.QueueSources()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]template.QueueSource{
		"UsageQueue":  {Function: "IngestUsageFunction", Queue: "UsageQueue", BatchSize: 25, ReportBatchItemFailures: true, DeadLetterQueue: "UsageDeadLetterQueue", MaxReceiveCount: 5, VisibilityTimeout: 180},
		"ExportQueue": {Function: "ExportLogsFunction", Queue: "ExportQueue", BatchSize: 1, ReportBatchItemFailures: true, DeadLetterQueue: "ExportDeadLetterQueue", MaxReceiveCount: 3, VisibilityTimeout: 1800},
	}
	for _, s := range got {
		if w, ok := want[s.Queue]; ok && s != w {
			t.Errorf("queue %s: %+v, want %+v", s.Queue, s, w)
		}
		delete(want, s.Queue)
	}
	if len(want) > 0 {
		t.Errorf("queues missing: %v", want)
	}
}

// TestQueueSourcesErrors ensures an SQS event the local stack could not
// serve (a queue that is not the template's) is an error naming it, and
// that defaults apply when the template leaves them out.
func TestQueueSourcesErrors(t *testing.T) {
	base := `
Resources:
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E:
          Type: SQS
          Properties:
            Queue: %s
`
	tpl, err := template.Parse([]byte(strings.Replace(base, "%s", "!GetAtt Q.Arn", 1)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.QueueSources()
	if err != nil || len(got) != 1 || got[0] != (template.QueueSource{Function: "F", Queue: "Q", BatchSize: 10, VisibilityTimeout: 30}) {
		t.Fatalf("QueueSources = %+v, %v; want Q with defaults", got, err)
	}
	for _, q := range []string{"arn:aws:sqs:eu-west-1:123456789012:elsewhere", "!GetAtt Missing.Arn", "!Ref Q"} {
		tpl, err := template.Parse([]byte(strings.Replace(base, "%s", q, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tpl.QueueSources(); err == nil || !strings.Contains(err.Error(), "function F") {
			t.Errorf("Queue %s: error %v, want one naming function F", q, err)
		}
	}
}
