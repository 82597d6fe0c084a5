//go:build unix && !linux

package localproc

import "syscall"

// sysProcAttr puts the process in its own process group, so that Stop
// reaches anything it forks.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
