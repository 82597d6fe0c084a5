package localsqs

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
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

// QueueURL returns the URL of queue name at endpoint (http://host:port).
func (s *Server) QueueURL(endpoint, name string) string {
	return strings.TrimSuffix(endpoint, "/") + "/" + s.AccountID + "/" + name
}

// ServeHTTP answers SendMessage and GetQueueUrl; any other action answers
// 400 UnsupportedOperation.
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
	default:
		aerr = &apiError{http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation;Sender",
			"the local SQS supports SendMessage and GetQueueUrl, not " + action}
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
	name := in.QueueURL[strings.LastIndexByte(in.QueueURL, '/')+1:]
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
