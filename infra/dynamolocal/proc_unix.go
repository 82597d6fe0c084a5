//go:build unix && !linux

package dynamolocal

import "syscall"

// sysProcAttr puts DynamoDB Local in its own process group, so that Stop
// reaches the JVM and anything it forks.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
