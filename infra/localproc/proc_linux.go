package localproc

import "syscall"

// sysProcAttr puts the process in its own process group, so that Stop
// reaches anything it forks, and has the kernel kill it if this
// process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
