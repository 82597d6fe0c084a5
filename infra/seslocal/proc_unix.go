//go:build unix && !linux

package seslocal

import "syscall"

// sysProcAttr puts the emulator in its own process group, so that Stop
// reaches node and anything it forks.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
