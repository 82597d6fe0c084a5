package localsqs

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
)

// The SQS JSON protocol: every call is a POST of a JSON body, the action in
// the X-Amz-Target header ("AmazonSQS.SendMessage"), answered with a JSON
// body, or a 400 whose __type names the error.

const (
	contentType  = "application/x-amz-json-1.0"
	targetPrefix = "AmazonSQS."
)

type apiError struct {
	status     int
	code       string // the __type's shape name
	queryError string // the legacy code in x-amzn-query-error
	message    string
}

func errQueue(url string) *apiError {
	return &apiError{http.StatusBadRequest, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender", "The specified queue does not exist: " + url}
}

func errInvalid(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterValue", "InvalidParameterValue;Sender", msg}
}

type messageAttribute struct {
	DataType    string `json:"DataType"`
	StringValue string `json:"StringValue,omitempty"`
	BinaryValue []byte `json:"BinaryValue,omitempty"`
}

type sendMessageInput struct {
	QueueURL          string                      `json:"QueueUrl"`
	MessageBody       string                      `json:"MessageBody"`
	DelaySeconds      int                         `json:"DelaySeconds"`
	MessageAttributes map[string]messageAttribute `json:"MessageAttributes"`
}

type sendMessageOutput struct {
	MD5OfMessageBody       string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes string `json:"MD5OfMessageAttributes,omitempty"`
	MessageID              string `json:"MessageId"`
}

type getQueueURLInput struct {
	QueueName string `json:"QueueName"`
}

type getQueueURLOutput struct {
	QueueURL string `json:"QueueUrl"`
}

type listQueuesInput struct {
	QueueNamePrefix string `json:"QueueNamePrefix"`
}

type listQueuesOutput struct {
	QueueUrls []string `json:"QueueUrls"`
}

type receiveMessageInput struct {
	QueueURL            string `json:"QueueUrl"`
	MaxNumberOfMessages int    `json:"MaxNumberOfMessages"`
	VisibilityTimeout   *int   `json:"VisibilityTimeout"`
	WaitTimeSeconds     int    `json:"WaitTimeSeconds"`
}

type receivedMessage struct {
	MessageID              string                      `json:"MessageId"`
	ReceiptHandle          string                      `json:"ReceiptHandle"`
	MD5OfBody              string                      `json:"MD5OfBody"`
	Body                   string                      `json:"Body"`
	Attributes             map[string]string           `json:"Attributes"`
	MessageAttributes      map[string]messageAttribute `json:"MessageAttributes,omitempty"`
	MD5OfMessageAttributes string                      `json:"MD5OfMessageAttributes,omitempty"`
}

type receiveMessageOutput struct {
	Messages []receivedMessage `json:"Messages,omitempty"`
}

type deleteMessageInput struct {
	QueueURL      string `json:"QueueUrl"`
	ReceiptHandle string `json:"ReceiptHandle"`
}

type getQueueAttributesInput struct {
	QueueURL string `json:"QueueUrl"`
}

type getQueueAttributesOutput struct {
	Attributes map[string]string `json:"Attributes"`
}

// QueueURL returns the URL of queue name at endpoint (http://host:port).
func (s *Server) QueueURL(endpoint, name string) string {
	return strings.TrimSuffix(endpoint, "/") + "/" + s.AccountID + "/" + name
}

// ServeHTTP answers SendMessage, GetQueueUrl, ListQueues, ReceiveMessage,
// DeleteMessage and GetQueueAttributes; any other action answers 400
// UnsupportedOperation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if r.Method != http.MethodPost || !strings.HasPrefix(target, targetPrefix) {
		writeError(w, &apiError{http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation;Sender",
			"this local SQS speaks the JSON protocol only (POST with X-Amz-Target: AmazonSQS.<Action>)"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 2*MaxMessageBytes))
	if err != nil {
		writeError(w, errInvalid("the request body is too large"))
		return
	}
	var out any
	var aerr *apiError
	switch action := strings.TrimPrefix(target, targetPrefix); action {
	case "SendMessage":
		out, aerr = s.sendMessage(body)
	case "GetQueueUrl":
		var in getQueueURLInput
		if json.Unmarshal(body, &in) != nil {
			aerr = errInvalid("the request is not valid JSON")
		} else if s.hasQueue(in.QueueName) {
			out = getQueueURLOutput{QueueURL: s.QueueURL("http://"+r.Host, in.QueueName)}
		} else {
			aerr = errQueue(in.QueueName)
		}
	case "ListQueues":
		var in listQueuesInput
		if json.Unmarshal(body, &in) != nil {
			aerr = errInvalid("the request is not valid JSON")
			break
		}
		urls := []string{}
		for _, n := range s.QueueNames() {
			if strings.HasPrefix(n, in.QueueNamePrefix) {
				urls = append(urls, s.QueueURL("http://"+r.Host, n))
			}
		}
		out = listQueuesOutput{QueueUrls: urls}
	case "ReceiveMessage":
		out, aerr = s.receiveMessage(r, body)
	case "DeleteMessage":
		var in deleteMessageInput
		if json.Unmarshal(body, &in) != nil {
			aerr = errInvalid("the request is not valid JSON")
		} else if !strings.Contains(in.ReceiptHandle, "#") {
			aerr = &apiError{http.StatusBadRequest, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid;Sender", "The input receipt handle is invalid."}
		} else if s.Delete(queueName(in.QueueURL), in.ReceiptHandle) != nil {
			aerr = errQueue(in.QueueURL)
		} else {
			out = struct{}{}
		}
	case "GetQueueAttributes":
		var in getQueueAttributesInput
		if json.Unmarshal(body, &in) != nil {
			aerr = errInvalid("the request is not valid JSON")
		} else if attrs, ok := s.attributes(queueName(in.QueueURL)); !ok {
			aerr = errQueue(in.QueueURL)
		} else {
			out = getQueueAttributesOutput{Attributes: attrs}
		}
	default:
		aerr = &apiError{http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation;Sender",
			"the local SQS supports SendMessage, GetQueueUrl, ListQueues, ReceiveMessage, DeleteMessage and GetQueueAttributes, not " + action}
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", contentType)
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) sendMessage(body []byte) (any, *apiError) {
	var in sendMessageInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errInvalid("the request is not valid JSON")
	}
	name := queueName(in.QueueURL)
	if !s.hasQueue(name) {
		return nil, errQueue(in.QueueURL)
	}
	if in.MessageBody == "" {
		return nil, errInvalid("The request must contain the parameter MessageBody.")
	}
	if in.DelaySeconds < 0 || in.DelaySeconds > 900 {
		return nil, errInvalid("DelaySeconds must be from 0 to 900")
	}
	size := len(in.MessageBody)
	var attrs map[string]events.SQSMessageAttribute
	for n, a := range in.MessageAttributes {
		if attrs == nil {
			attrs = map[string]events.SQSMessageAttribute{}
		}
		ev := events.SQSMessageAttribute{DataType: a.DataType}
		switch {
		case strings.HasPrefix(a.DataType, "Binary"):
			ev.BinaryValue = a.BinaryValue
			if ev.BinaryValue == nil {
				ev.BinaryValue = []byte{}
			}
		case strings.HasPrefix(a.DataType, "String"), strings.HasPrefix(a.DataType, "Number"):
			v := a.StringValue
			ev.StringValue = &v
		default:
			return nil, errInvalid("message attribute " + n + " has an unknown data type " + a.DataType)
		}
		attrs[n] = ev
		size += len(n) + len(a.DataType) + len(a.StringValue) + len(a.BinaryValue)
	}
	if size > MaxMessageBytes {
		return nil, errInvalid("the message is larger than 1 MiB")
	}
	id, err := s.Send(name, in.MessageBody, attrs, time.Duration(in.DelaySeconds)*time.Second)
	if err != nil {
		return nil, errQueue(in.QueueURL)
	}
	out := sendMessageOutput{MD5OfMessageBody: md5Hex([]byte(in.MessageBody)), MessageID: id}
	if len(attrs) > 0 {
		out.MD5OfMessageAttributes = attributesMD5(attrs)
	}
	return out, nil
}

func (s *Server) receiveMessage(r *http.Request, body []byte) (any, *apiError) {
	var in receiveMessageInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errInvalid("the request is not valid JSON")
	}
	if in.MaxNumberOfMessages == 0 {
		in.MaxNumberOfMessages = 1
	}
	if in.MaxNumberOfMessages < 1 || in.MaxNumberOfMessages > 10 {
		return nil, errInvalid("MaxNumberOfMessages must be from 1 to 10")
	}
	if in.WaitTimeSeconds < 0 || in.WaitTimeSeconds > 20 {
		return nil, errInvalid("WaitTimeSeconds must be from 0 to 20")
	}
	var visibility time.Duration
	if in.VisibilityTimeout != nil {
		if *in.VisibilityTimeout < 0 || *in.VisibilityTimeout > 43200 {
			return nil, errInvalid("VisibilityTimeout must be from 0 to 43200")
		}
		// Zero makes the messages visible again at once.
		visibility = max(time.Duration(*in.VisibilityTimeout)*time.Second, time.Nanosecond)
	}
	msgs, err := s.Receive(r.Context(), queueName(in.QueueURL), in.MaxNumberOfMessages, visibility, time.Duration(in.WaitTimeSeconds)*time.Second)
	if err != nil {
		return nil, errQueue(in.QueueURL)
	}
	out := receiveMessageOutput{}
	for _, m := range msgs {
		rm := receivedMessage{
			MessageID: m.ID, ReceiptHandle: m.ReceiptHandle, MD5OfBody: md5Hex([]byte(m.Body)), Body: m.Body,
			Attributes: map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(m.Receives),
				"SentTimestamp":                    strconv.FormatInt(m.SentAt.UnixMilli(), 10),
				"SenderId":                         s.AccountID,
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
			},
		}
		if len(m.Attributes) > 0 {
			rm.MessageAttributes = map[string]messageAttribute{}
			for n, a := range m.Attributes {
				rm.MessageAttributes[n] = messageAttribute{DataType: a.DataType, StringValue: aws.ToString(a.StringValue), BinaryValue: a.BinaryValue}
			}
			rm.MD5OfMessageAttributes = attributesMD5(m.Attributes)
		}
		out.Messages = append(out.Messages, rm)
	}
	return out, nil
}

// attributes are GetQueueAttributes' answer for queue name.
func (s *Server) attributes(name string) (map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return nil, false
	}
	now := s.now()
	visible, hidden := 0, 0
	for _, m := range q.msgs {
		if m.inFlight || m.visibleAt.After(now) {
			hidden++
		} else {
			visible++
		}
	}
	attrs := map[string]string{
		"QueueArn":                              s.ARN(name),
		"ApproximateNumberOfMessages":           strconv.Itoa(visible),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(hidden),
		"VisibilityTimeout":                     strconv.Itoa(int(q.Visibility / time.Second)),
	}
	if q.DeadLetter != "" {
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, s.ARN(q.DeadLetter), q.MaxReceiveCount)
	}
	return attrs, true
}

// queueName is the last segment of a queue URL.
func queueName(url string) string { return url[strings.LastIndexByte(url, '/')+1:] }

func (s *Server) hasQueue(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.queues[name]
	return ok
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Query-Error", e.queryError)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.message})
}
