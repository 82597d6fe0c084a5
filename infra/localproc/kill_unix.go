//go:build unix

package localproc

import (
	"errors"
	"os"
	"syscall"
)

// terminate asks the process group of p to exit.
func terminate(p *os.Process) error { return signalGroup(p, syscall.SIGTERM) }

// kill forces the process group of p to exit.
func kill(p *os.Process) error { return signalGroup(p, syscall.SIGKILL) }

func signalGroup(p *os.Process, sig syscall.Signal) error {
	err := syscall.Kill(-p.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}
