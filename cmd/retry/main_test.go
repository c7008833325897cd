package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "retry-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "retry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func retry(t *testing.T, stdin string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	return cmd, &out, &errb
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

func TestBinaryExitCodePropagation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"run", "--attempts", "2", "--base", "10ms", "--", "sh", "-c", "exit 7"}, 7},
		{[]string{"run", "--attempts", "2", "--base", "10ms", "--", "true"}, 0},
		{[]string{"run", "--attempts", "1", "--", "/nonexistent/command"}, 127},
		{[]string{"run", "--attempts", "1", "--", "sh", "-c", "kill -KILL $$"}, 128 + 9},
		{[]string{"run", "--nope"}, 125},
		{[]string{"run", "--attempts", "2", "--base", "10ms", "--", "sh", "-c", "exit 2"}, 2}, // the command's 2, not a usage error
		{[]string{"run", "--max-time", "300ms", "--", "sleep", "5"}, 124},
		{[]string{"run", "--attempts", "1", "--attempt-timeout", "100ms", "--", "sleep", "5"}, 124},
		{[]string{"run", "--attempts", "1", "--attempt-timeout", "100ms", "--grace", "0", "--", "sleep", "5"}, 137},
		{[]string{"demo", "stray"}, 125},
	} {
		cmd, _, errb := retry(t, "", c.args...)
		if got := exitCode(t, cmd.Run()); got != c.want {
			t.Errorf("%v: exit %d, want %d; stderr %s", c.args, got, c.want, errb)
		}
	}
}

// A command that cannot run says why, as sh does, with sh's status: a file
// without execute permission 126 "permission denied"; a #! line naming a
// missing interpreter 127 "bad interpreter"; a missing file or a command
// not in PATH 127.
func TestBinaryCannotRunSaysWhy(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	badInterp := filepath.Join(dir, "bad.sh")
	if err := os.WriteFile(noexec, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cmd  string
		code int
		msg  string
	}{
		{noexec, 126, noexec + ": permission denied"},
		{badInterp, 127, badInterp + ": bad interpreter: no such file or directory"},
		{filepath.Join(dir, "missing"), 127, "missing: no such file or directory"},
		{"no-such-command-anywhere", 127, "no-such-command-anywhere: command not found"},
	} {
		cmd, _, errb := retry(t, "", "run", "--attempts", "1", "--", c.cmd)
		got := exitCode(t, cmd.Run())
		if got != c.code || !strings.Contains(errb.String(), c.msg) || strings.Contains(errb.String(), "%!") {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.cmd, got, errb.String(), c.code, c.msg)
		}
	}
}

// --grace 0 kills at once: a command that ignores SIGTERM is gone as soon
// as its attempt times out (it used to mean 5 s).
func TestBinaryGraceZeroKillsAtOnce(t *testing.T) {
	cmd, _, errb := retry(t, "", "run", "--attempts", "1", "--attempt-timeout", "200ms", "--grace", "0", "--", "sh", "-c", "trap '' TERM; sleep 5")
	start := time.Now()
	code := exitCode(t, cmd.Run())
	if took := time.Since(start); took > 2*time.Second || code == 0 {
		t.Errorf("exit %d after %v (stderr %q); want the attempt killed soon after 200ms", code, took, errb)
	}
}

func TestBinaryStdinReplay(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "seen")
	script := `cat >> "$1"; [ "$(wc -c < "$1")" -ge 15 ]`
	cmd, _, errb := retry(t, "hello", "run", "--attempts", "5", "--base", "1ms", "--", "sh", "-c", script, "sh", f)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errb)
	}
	if b, _ := os.ReadFile(f); string(b) != "hellohellohello" {
		t.Errorf("the command saw %q over its attempts, want hello three times", b)
	}
}

// TestBinaryStdinStreams: the first attempt reads standard input as it
// arrives, before the producer closes the pipe (it used to start only at
// the end of the input).
func TestBinaryStdinStreams(t *testing.T) {
	cmd := exec.Command(bin, "run", "--", "sh", "-c", `read line; echo "got $line"`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "hello\n") // and the pipe stays open
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := out.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if s != "got hello\n" {
			t.Errorf("the command printed %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Error("the command did not get its input while the pipe was open")
	}
	in.Close()
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestBinaryStdinModes: a large input the command never reads is no
// error; past --stdin-max a retry cannot replay and says which flag to
// raise; --stdin=none gives nothing; --stdin=pass lets each attempt read
// on where the last stopped.
func TestBinaryStdinModes(t *testing.T) {
	big := strings.Repeat("x", 4096)
	for _, c := range []struct {
		name, stdin string
		args        []string
		code        int
		out, errOut string
	}{
		{"unread input past the limit", big, []string{"--stdin-max", "1KiB", "--", "true"}, 0, "", ""},
		{"a retry past the limit", big, []string{"--stdin-max", "1KiB", "--attempts", "2", "--base", "1ms", "--", "sh", "-c", "cat > /dev/null; exit 1"}, 125, "", "--stdin-max"},
		{"none", "data", []string{"--stdin", "none", "--", "cat"}, 0, "", ""},
		{"pass", "a\nb\n", []string{"--stdin", "pass", "--attempts", "2", "--base", "1ms", "--quiet", "--", "sh", "-c", "read x; echo $x; exit 1"}, 1, "a\nb\n", ""},
		{"bad mode", "", []string{"--stdin", "tee", "--", "true"}, 125, "", "--stdin \"tee\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd, out, errb := retry(t, c.stdin, append([]string{"run"}, c.args...)...)
			code := exitCode(t, cmd.Run())
			if code != c.code || out.String() != c.out || !strings.Contains(errb.String(), c.errOut) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr containing %q", code, out, errb, c.code, c.out, c.errOut)
			}
		})
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func readPid(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// TestBinarySIGTERMForwarded: SIGTERM to retry reaches the command's process
// group (the command's trap runs) and retry exits at once, without retrying.
func TestBinarySIGTERMForwarded(t *testing.T) {
	dir := t.TempDir()
	pidf, mark := filepath.Join(dir, "pid"), filepath.Join(dir, "trapped")
	script := `trap 'echo got >> "$2"; exit 42' TERM; sleep 30 & echo $! > "$1"; wait`
	cmd, _, errb := retry(t, "", "run", "--attempts", "5", "--base", "10ms", "--", "sh", "-c", script, "sh", pidf, mark)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sleeper := readPid(t, pidf)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	code := exitCode(t, cmd.Wait())
	if code != 143 || time.Since(start) > 3*time.Second {
		t.Errorf("exit %d after %v, want 143 promptly; stderr %s", code, time.Since(start), errb)
	}
	if b, _ := os.ReadFile(mark); string(b) != "got\n" {
		t.Errorf("the command's TERM trap ran %q times, want once (no retry after the signal)", b)
	}
	waitGone(t, sleeper)
}

// TestBinaryAttemptTimeoutKillsGroup: a command that ignores SIGTERM is
// killed after the grace period, with its whole process group.
func TestBinaryAttemptTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "pid")
	script := `trap '' TERM; sleep 30 & echo $! > "$1"; while :; do sleep 0.05; done`
	cmd, _, errb := retry(t, "", "run", "--attempts", "1", "--attempt-timeout", "300ms", "--grace", "200ms", "--", "sh", "-c", script, "sh", pidf)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sleeper := readPid(t, pidf)
	code := exitCode(t, cmd.Wait())
	if code != 137 || time.Since(start) > 3*time.Second {
		t.Errorf("exit %d after %v, want 137 (killed after the grace) within the timeout plus grace; stderr %s", code, time.Since(start), errb)
	}
	waitGone(t, sleeper)
}

// TestBinaryMaxTimeEndsTheRunningAttempt: --max-time is a hard limit, as
// curl's: an attempt still running then is ended (SIGTERM; SIGKILL after
// --grace), and retry exits 124 at once.
func TestBinaryMaxTimeEndsTheRunningAttempt(t *testing.T) {
	cmd, _, errb := retry(t, "", "run", "--attempts", "5", "--max-time", "400ms", "--", "sh", "-c", "sleep 30")
	start := time.Now()
	code := exitCode(t, cmd.Run())
	took := time.Since(start)
	if code != 124 || took < 400*time.Millisecond || took > 2*time.Second || !strings.Contains(errb.String(), "--max-time 400ms ran out") {
		t.Errorf("exit %d after %v, want 124 at about 400ms; stderr %s", code, took, errb)
	}
}

// waitGone checks a process of the command's group is gone (killed, and
// reaped by init: no zombie left behind).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return
		}
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie waiting for its reaper
		}
	}
	t.Errorf("process %d of the command's group still exists", pid)
}

// TestBinaryNoZombies: after retry runs a failing command several times,
// none of its children is left unreaped.
func TestBinaryNoZombies(t *testing.T) {
	cmd, _, _ := retry(t, "", "run", "--attempts", "4", "--base", "1ms", "--", "sh", "-c", "exit 1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var zombies []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			time.Sleep(2 * time.Millisecond)
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
				if err != nil {
					continue
				}
				f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
				if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
					zombies = append(zombies, e.Name())
				}
			}
			if !alive(pid) {
				return
			}
		}
	}()
	code := exitCode(t, cmd.Wait())
	<-done
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	// A child is a zombie for the instant between its exit and the Wait;
	// one that stays past retry's next attempt would show up repeatedly.
	counts := map[string]int{}
	for _, z := range zombies {
		counts[z]++
	}
	for z, n := range counts {
		if n > 20 {
			t.Errorf("child %s stayed a zombie (seen %d times)", z, n)
		}
	}
}

// TestBinaryOperatorFlags: --until, --signal, --preserve-status,
// --stdout last, --message and --foreground, through the built binary.
func TestBinaryOperatorFlags(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "flag")
	trapInt := `trap 'exit 42' INT; sleep 5 & wait`
	for _, c := range []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"until", []string{"--until", "0,3", "--", "sh", "-c", "exit 3"}, 0, "", ""},
		{"signal", []string{"--attempts", "1", "--attempt-timeout", "200ms", "--signal", "INT", "--", "sh", "-c", trapInt}, 124, "", ""},
		{"preserve-status", []string{"--attempts", "1", "--attempt-timeout", "200ms", "--signal", "INT", "--preserve-status", "--", "sh", "-c", trapInt}, 42, "", ""},
		{"stdout last", []string{"--attempts", "3", "--base", "1ms", "--stdout", "last", "--", "sh", "-c", `echo attempt; [ -e "$1" ] || { touch "$1"; exit 1; }`, "sh", flag}, 0, "attempt\n", ""},
		{"message", []string{"--attempts", "2", "--base", "1ms", "--message", "try {{.Attempt}} of {{.Limit}}: status {{.Status}}", "--", "sh", "-c", "exit 1"}, 1, "", "try 1 of 2: status 1\n"},
		{"bad message", []string{"--message", "{{.Nope}}", "--", "true"}, 125, "", "--message"},
		{"bad signal", []string{"--signal", "TERMINATE", "--", "true"}, 125, "--signal", ""},
		{"foreground", []string{"--attempts", "1", "--attempt-timeout", "200ms", "--foreground", "--", "sh", "-c", "exec sleep 5"}, 124, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(flag)
			cmd, out, errb := retry(t, "", append([]string{"run"}, c.args...)...)
			start := time.Now()
			code := exitCode(t, cmd.Run())
			if code != c.code || (c.out != "" && !strings.Contains(out.String()+errb.String(), c.out)) || !strings.Contains(errb.String(), c.errs) || time.Since(start) > 4*time.Second {
				t.Errorf("exit %d after %v, stdout %q, stderr %q; want %d, %q, stderr with %q", code, time.Since(start), out, errb, c.code, c.out, c.errs)
			}
			if c.name == "stdout last" && out.String() != "attempt\n" {
				t.Errorf("--stdout last passed on %q, want the last attempt's line only", out)
			}
		})
	}
}
