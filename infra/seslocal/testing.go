package seslocal

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// shared is the one emulator of a test binary, started on first use.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns the test binary's emulator, starting it on first use
// (SES_ENDPOINT overrides it), and fails the test, with the reason, when
// it cannot start. Tests share it: each should use its own recipient
// addresses and read its mail with EmailsTo.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.once.Do(func() {
		shared.srv, shared.err = Start(context.Background(), Options{})
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.srv
}

// StopShared stops the emulator that Shared started, if any; call it from
// TestMain after the tests ran. Without it the emulator still dies with
// the test binary (on Linux).
func StopShared() {
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}
