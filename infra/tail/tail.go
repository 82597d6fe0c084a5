// Package tail keeps the last bytes a child process wrote, so that the
// local peers (DynamoDB Local, the SES emulator, a function process) can
// say why they failed to start without holding all their output.
package tail

import "sync"

// Buffer is an io.Writer that keeps only the last Max bytes written; it is
// safe for concurrent use. The zero value keeps nothing.
type Buffer struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// New returns a Buffer that keeps the last max bytes.
func New(max int) *Buffer { return &Buffer{Max: max} }

// Write implements io.Writer; it never fails.
func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = t.b[len(t.b)-t.Max:]
	}
	return len(p), nil
}

// String returns the kept bytes.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
