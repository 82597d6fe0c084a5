// Package localproc runs the local stack's helper processes (DynamoDB
// Local's JVM, the SES emulator's node): each in a process group of its
// own, so that stopping it reaches whatever it forked, and on Linux killed
// by the kernel if the Go process dies first (a test binary killed on
// timeout leaves no java or node behind).
package localproc

import (
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// Process is a started command.
type Process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Start starts cmd in a process group of its own and watches for its exit.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process exited, once Done is closed.
func (p *Process) Err() error { return p.waitErr }

// Stop ends the process group and waits for the process: SIGTERM, then
// SIGKILL after grace. It is safe to call more than once; name says what
// stopped in its error.
func (p *Process) Stop(name string, grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return // already exited
		default:
		}
		if err := terminate(p.cmd.Process); err != nil {
			p.stopErr = fmt.Errorf("stop %s: %w", name, err)
		}
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		if err := kill(p.cmd.Process); err != nil {
			p.stopErr = fmt.Errorf("stop %s: %w", name, err)
		}
		<-p.done
	})
	return p.stopErr
}
