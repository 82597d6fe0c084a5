//go:build unix

package localproc

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopReachesTheGroup ensures Stop ends what the process forked (the
// reason for the process group), kills a process that ignores SIGTERM after
// the grace period, and can be called again.
func TestStopReachesTheGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
		grace  time.Duration
	}{
		{"terminated", "sleep 60 & echo $!; wait", 10 * time.Second},
		{"killed after grace", "trap '' TERM; sleep 60 & echo $!; wait; wait", 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tt.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			p, err := Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("read the child's pid: %v", err)
			}
			child, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("child pid %q: %v", line, err)
			}
			if err := p.Stop("sh", tt.grace); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the process exited")
			}
			if p.Err() == nil {
				t.Error("Err() = nil after a signal, want the exit status")
			}
			// The forked sleep is gone too: no such process, or a zombie
			// that init has not reaped yet.
			deadline := time.Now().Add(5 * time.Second)
			for !gone(child) {
				if time.Now().After(deadline) {
					t.Fatalf("the forked child %d survived Stop", child)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := p.Stop("sh", tt.grace); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

// gone tells whether pid has ended: it no longer exists, or only as a
// zombie waiting for its parent (Linux /proc; elsewhere signal 0 alone).
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
