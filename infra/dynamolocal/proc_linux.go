package dynamolocal

import "syscall"

// sysProcAttr puts DynamoDB Local in its own process group, so that Stop
// reaches the JVM and anything it forks, and has the kernel kill it if this
// process dies first (a test binary killed on timeout leaves no java
// process behind).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
