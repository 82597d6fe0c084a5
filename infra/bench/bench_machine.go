package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// benchMachine describes where a benchmark ran, so that figures from two
// machines are never compared by mistake.
type benchMachine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memoryMB"`
	OS       string `json:"os"`
	Go       string `json:"go"`
	Java     string `json:"java"`
}

// benchCommit is the code that was measured.
type benchCommit struct {
	Hash  string `json:"hash"`
	Dirty bool   `json:"dirty"`
}

func (c benchCommit) String() string {
	if c.Dirty {
		return c.Hash + " (dirty: uncommitted changes)"
	}
	return c.Hash
}

// describeMachine reads the CPU model and memory from /proc (where there is
// one) and asks the toolchains for their versions.
func describeMachine(ctx context.Context) benchMachine {
	m := benchMachine{
		CPU:   "unknown",
		Cores: runtime.NumCPU(),
		OS:    runtime.GOOS + "/" + runtime.GOARCH,
		Go:    runtime.Version(),
		Java:  "not found",
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		m.MemoryMB = kb / 1024
	}
	if out, err := commandOutput(ctx, "", "go", "env", "GOVERSION"); err == nil && out != "" {
		m.Go = out
	}
	// java -version prints on stderr; its first line names the release.
	if out, err := commandOutput(ctx, "", "java", "-version"); err == nil {
		m.Java, _, _ = strings.Cut(out, "\n")
	}
	return m
}

// describeCommit returns the short hash of HEAD and whether the work tree
// differs from it.
func describeCommit(ctx context.Context, root string) benchCommit {
	c := benchCommit{Hash: "unknown"}
	if out, err := commandOutput(ctx, root, "git", "rev-parse", "--short", "HEAD"); err == nil {
		c.Hash = out
	}
	if out, err := commandOutput(ctx, root, "git", "status", "--porcelain", "--untracked-files=no"); err == nil {
		c.Dirty = out != ""
	}
	return c
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// commandOutput runs a short command (at most 30 s) and returns its
// combined output, trimmed.
func commandOutput(ctx context.Context, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
