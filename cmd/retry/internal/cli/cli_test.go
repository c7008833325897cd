package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/jittered/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRunner answers attempts from a script of outcomes and records what
// each attempt was given.
type fakeRunner struct {
	mu       sync.Mutex
	outcomes []Outcome
	errs     []error
	stdins   []string
	argv     [][]string
	// onRun, if set, runs during an attempt (e.g. to deliver a signal).
	onRun func(a Attempt) (Outcome, bool)
}

func (f *fakeRunner) Run(ctx context.Context, a Attempt) (Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := ""
	if a.Stdin != nil {
		b, _ := io.ReadAll(a.Stdin)
		in = string(b)
	}
	f.stdins = append(f.stdins, in)
	f.argv = append(f.argv, a.Argv)
	if f.onRun != nil {
		if o, ok := f.onRun(a); ok {
			return o, nil
		}
	}
	i := min(len(f.argv)-1, len(f.outcomes)-1)
	var err error
	if i < len(f.errs) {
		err = f.errs[i]
	}
	return f.outcomes[i], err
}

func runMain(t *testing.T, r Runner, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	p := &Program{Runner: r}
	code = p.Main(context.Background(), args, IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func codes(cs ...int) []Outcome {
	var o []Outcome
	for _, c := range cs {
		o = append(o, Outcome{Code: c})
	}
	return o
}

func TestRunOutcomes(t *testing.T) {
	fast := []string{"run", "--base", "1ms", "--cap", "2ms", "--attempts", "4"}
	tests := []struct {
		name     string
		outcomes []Outcome
		errs     []error
		flags    []string
		code     int
		attempts int
		stderr   []string
	}{
		{"first try", codes(0), nil, nil, 0, 1, nil},
		{"third try", codes(1, 1, 0), nil, nil, 0, 3, []string{"retry: attempt 1/4 exited 1; next attempt in", "attempt 2/4"}},
		{"gives up with the last status", codes(3, 4, 5, 6), nil, nil, 6, 4, []string{"gave up: max attempts reached", "last exit status 6"}},
		{"stop-on", codes(3, 0), nil, []string{"--stop-on", "3,9-12"}, 3, 1, nil},
		{"retry-on miss", codes(4, 0), nil, []string{"--retry-on", "75,100-110"}, 4, 1, nil},
		{"retry-on hit", codes(75, 101, 0), nil, []string{"--retry-on", "75,100-110"}, 0, 3, nil},
		{"timed out last attempt", []Outcome{{Code: 143, TimedOut: true}}, nil, nil, ExitGaveUpOnTime, 4, []string{"timed out"}},
		{"not found", codes(127), []error{ErrNotFound}, nil, ExitNotFound, 1, []string{"command not found"}},
		{"quiet", codes(1, 0), nil, []string{"--quiet"}, 0, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{outcomes: tt.outcomes, errs: tt.errs}
			args := append(append(append([]string{}, fast...), tt.flags...), "--", "cmd", "arg")
			code, _, stderr := runMain(t, r, "", args...)
			if code != tt.code || len(r.argv) != tt.attempts {
				t.Errorf("exit %d after %d attempts, want %d after %d; stderr:\n%s", code, len(r.argv), tt.code, tt.attempts, stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.name == "quiet" && stderr != "" {
				t.Errorf("--quiet printed %q", stderr)
			}
			if strings.Join(r.argv[0], " ") != "cmd arg" {
				t.Errorf("argv %v", r.argv[0])
			}
		})
	}
}

func TestRunMaxTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeRunner{outcomes: codes(1)}
		start := time.Now()
		code, _, stderr := runMain(t, r, "", "run", "--attempts", "0", "--base", "40ms", "--jitter", "none", "--max-time", "100ms", "--", "x")
		// 40 + 80 = 120 > 100: gives up after the second attempt, at 40 ms, on time.
		if code != ExitGaveUpOnTime || len(r.argv) != 2 || time.Since(start) != 40*time.Millisecond || !strings.Contains(stderr, "max elapsed") {
			t.Errorf("exit %d after %d attempts and %v: %s", code, len(r.argv), time.Since(start), stderr)
		}
	})
}

func TestRunStdinReplayed(t *testing.T) {
	r := &fakeRunner{outcomes: codes(1, 1, 0)}
	code, _, _ := runMain(t, r, "payload\n", "run", "--base", "1ms", "--", "x")
	if code != 0 || len(r.stdins) != 3 {
		t.Fatalf("exit %d, %d attempts", code, len(r.stdins))
	}
	for i, s := range r.stdins {
		if s != "payload\n" {
			t.Errorf("attempt %d got stdin %q", i+1, s)
		}
	}
}

func TestRunJSON(t *testing.T) {
	r := &fakeRunner{outcomes: codes(2, 0)}
	code, _, stderr := runMain(t, r, "", "run", "--base", "1ms", "--json", "--", "x")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var a, b attemptRecord
	if json.Unmarshal([]byte(lines[0]), &a) != nil || json.Unmarshal([]byte(lines[1]), &b) != nil {
		t.Fatalf("not JSON:\n%s", stderr)
	}
	if a.Attempt != 1 || a.ExitCode != 2 || a.NextDelay == nil || b.Attempt != 2 || !b.Final || b.ExitCode != 0 {
		t.Errorf("records %+v %+v", a, b)
	}
}

func TestRunSignalStopsRetries(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	r := &fakeRunner{outcomes: codes(1), onRun: func(a Attempt) (Outcome, bool) {
		sigs <- syscall.SIGTERM
		s := <-a.Signals // the runner receives the forwarded signal
		return Outcome{Code: 143, Signal: s}, true
	}}
	var out, errb bytes.Buffer
	code := (&Program{Runner: r}).Main(context.Background(), []string{"run", "--base", "1ms", "--", "x"}, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Signals: sigs})
	if code != 128+int(syscall.SIGTERM) || len(r.argv) != 1 {
		t.Errorf("exit %d after %d attempts, want 143 after 1", code, len(r.argv))
	}
}

func TestDryRun(t *testing.T) {
	code, out, _ := runMain(t, nil, "", "run", "--dry-run", "--attempts", "4", "--base", "100ms", "--jitter", "none")
	if code != 0 || !strings.Contains(out, "attempts=4") || !strings.Contains(out, "400ms") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// Repeated list flags accumulate.
func TestCodeSetAccumulates(t *testing.T) {
	var c codeSet
	for _, v := range []string{"1", "2", "5-7"} {
		if err := c.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	for code, want := range map[int]bool{1: true, 2: true, 3: false, 5: true, 7: true, 8: false} {
		if c.has(code) != want {
			t.Errorf("has(%d) = %v after --retry-on 1 --retry-on 2 --retry-on 5-7", code, !want)
		}
	}
	if c.String() != "1,2,5-7" {
		t.Errorf("String() = %q", c.String())
	}
}

func TestBadUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "Usage"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--attempts", "x", "--", "true"}, "-attempts"},
		{[]string{"run", "--attempts", "-1", "--", "true"}, "--attempts -1"},
		{[]string{"run", "--base", "fast", "--", "true"}, "-base"},
		{[]string{"run", "--cap", "1ms", "--base", "1s", "--", "true"}, "--cap"},
		{[]string{"run", "--multiplier", "0.5", "--", "true"}, "--multiplier"},
		{[]string{"run", "--jitter", "lots", "--", "true"}, "--jitter"},
		{[]string{"run", "--retry-on", "1-x", "--", "true"}, "-retry-on"},
		{[]string{"run", "--retry-on", "300", "--", "true"}, "0-255"},
		{[]string{"run"}, "no command given"},
		{[]string{"sim"}, "brooker, throttle or matrix"},
		{[]string{"sim", "brooker", "--trials", "0"}, "--trials"},
		{[]string{"sim", "throttle", "--clients", "a"}, "--clients"},
		{[]string{"demo", "--rate", "0"}, "--rate"},
		{[]string{"demo", "--strategies", "magic"}, "unknown strategy"},
		{[]string{"serve", "--shape", "418"}, "--shape"},
		{[]string{"serve", "--p500", "2"}, "--p500 = 2: must be a probability in [0, 1]"},
		{[]string{"serve", "--rate", "-1"}, "serve: --rate = -1: must be a finite number ≥ 0"},
		{[]string{"serve", "--p500", "0.6", "--p502", "0.6"}, "--p500 + --p502 + --p503 + --p504 + --reset + --reset-after = 1.2: must be ≤ 1"},
		{[]string{"serve", "--addr", "0.0.0.0:0"}, "--addr = 0.0.0.0:0: must be a loopback address (127.0.0.0/8, ::1, localhost) (retry serve listens on loopback only)"},
		{[]string{"run", "--retry-on", "-1", "--", "true"}, `"-1": an exit status`},
		// A stray word is an error, not the silent end of the flags.
		{[]string{"demo", "extra", "--items", "10"}, `demo: unexpected argument "extra"`},
		{[]string{"serve", "extra"}, `serve: unexpected argument "extra"`},
		{[]string{"sim", "brooker", "extra"}, `unexpected argument "extra"`},
		{[]string{"sim", "throttle", "extra"}, `unexpected argument "extra"`},
		{[]string{"sim", "matrix", "--scenarios", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, `version: unexpected argument "extra"`},
	} {
		code, _, stderr := runMain(t, nil, "", tt.args...)
		lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1
		if code != ExitUsage || !strings.Contains(stderr, tt.want) || (tt.args != nil && lines != 1) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line containing %q", tt.args, code, stderr, tt.want)
		}
	}
}

// retry sim -h names where the flags are instead of an empty section.
func TestSimHelpHasNoEmptyFlags(t *testing.T) {
	code, out, _ := runMain(t, nil, "", "sim", "-h")
	if code != 0 || strings.HasSuffix(strings.TrimSpace(out), "Flags:") || !strings.Contains(out, "retry sim brooker|throttle|matrix -h") {
		t.Errorf("exit %d, help ends %q", code, out[max(0, len(out)-120):])
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"run", "-h"}, {"demo", "--help"}, {"sim", "-h"}, {"serve", "-h"}} {
		code, out, _ := runMain(t, nil, "", args...)
		if code != 0 || !strings.Contains(out, "Examples:") {
			t.Errorf("%v: exit %d, no examples in:\n%s", args, code, out)
		}
	}
	if code, out, _ := runMain(t, nil, "", "version"); code != 0 || !strings.HasPrefix(out, "retry ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestSimCommands(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runMain(t, nil, "", "sim", "brooker", "--trials", "3", "--max-clients", "30", "--out", filepath.Join(dir, "b"))
	if code != 0 || !strings.Contains(out, "full jitter calls") || strings.Count(out, "\n") < 4 {
		t.Fatalf("brooker: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runMain(t, nil, "", "sim", "throttle", "--clients", "20", "--items", "300", "--rate", "200", "--out", filepath.Join(dir, "t"))
	if code != 0 || !strings.Contains(out, "recommended") {
		t.Fatalf("throttle: exit %d\n%s%s", code, out, stderr)
	}
	// One small scenario of the matrix (seed 19: 5/s, 67 items), all
	// three strategies, the summary and the chart.
	code, out, stderr = runMain(t, nil, "", "sim", "matrix", "--seed", "19", "--scenarios", "1", "--worst", "1", "--cubic", "--out", filepath.Join(dir, "m"))
	if code != 0 || !strings.Contains(out, "recommended") || !strings.Contains(out, "adaptive (AWS CUBIC)") || !strings.Contains(out, "seed=19 C=5/s") {
		t.Fatalf("matrix: exit %d\n%s%s", code, out, stderr)
	}
	// Other limiter settings replace the recommended setup's, by name.
	code, out, stderr = runMain(t, nil, "", "sim", "matrix", "--seed", "19", "--scenarios", "1", "--worst", "0", "--limiter", "fairness=0.3,interval=50ms", "--chart", "never")
	if code != 0 || !strings.Contains(out, "recommended (fairness=0.3,interval=50ms)") {
		t.Fatalf("matrix --limiter: exit %d\n%s%s", code, out, stderr)
	}
	for arg, want := range map[string]string{
		"fairness=x":       `fairness="x": want a number`,
		"bogus=1":          `unknown setting "bogus"`,
		"fairness=20":      "LimiterConfig.Fairness = 20",
		"interval=5":       `interval="5": want a duration`,
		"interval=1s,fair": `want name=value, got "fair"`,
	} {
		code, _, stderr = runMain(t, nil, "", "sim", "matrix", "--scenarios", "1", "--limiter", arg)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("--limiter %s: exit %d, stderr %q; want an error with %q", arg, code, stderr, want)
		}
	}
	for _, f := range []string{"b.png", "b.svg", "t.png", "t.svg", "m.png", "m.svg"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() < 1000 {
			t.Errorf("chart %s: %v", f, err)
		}
	}
}

func TestDemoSmall(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runMain(t, nil, "", "demo", "--items", "300", "--clients", "20", "--rate", "500", "--burst", "20",
		"--strategies", "full jitter,recommended", "--progress", "never", "--out", filepath.Join(dir, "demo"))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "full jitter") || !strings.Contains(out, "recommended") || !strings.Contains(out, "wall ÷ ideal") {
		t.Errorf("table:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "recommended" && f[len(f)-1] != "0" {
			t.Errorf("recommended had failures: %s", line)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "demo.png")); err != nil {
		t.Error(err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServe(t *testing.T) {
	var out, errb syncBuffer
	sigs := make(chan os.Signal, 1)
	done := make(chan int)
	go func() {
		done <- Main(context.Background(), []string{"serve", "--rate", "5", "--burst", "1", "--shape", "429", "--retry-after", "1s"}, IO{Stdout: &out, Stderr: &errb, Signals: sigs})
	}()
	var url string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if u := strings.TrimSpace(out.String()); u != "" {
			url = u
			break
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("no URL printed: %q", out.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	statuses := map[int]int{}
	for range 5 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	if statuses[200] < 1 || statuses[429] < 2 {
		t.Errorf("statuses %v: want a throttling service", statuses)
	}
	sigs <- syscall.SIGINT
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(errb.String(), "stopping") {
			t.Errorf("exit %d, stderr %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on SIGINT")
	}
}

func TestRunSignalDuringWaitStopsAtOnce(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	r := &fakeRunner{outcomes: codes(1)}
	done := make(chan int)
	var out, errb syncBuffer
	go func() {
		done <- (&Program{Runner: r}).Main(context.Background(), []string{"run", "--base", "30s", "--jitter", "none", "--", "x"}, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Signals: sigs})
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(errb.String(), "next attempt in") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	sigs <- syscall.SIGINT
	select {
	case code := <-done:
		if code != 128+int(syscall.SIGINT) {
			t.Errorf("exit %d, want 130", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a signal during the wait did not stop retry run")
	}
}

// demo and sim stop promptly on SIGINT/SIGTERM, print what they measured so
// far, and exit 128+N; no goroutine is left (goleak in TestMain).
func TestDemoAndSimStopOnSignal(t *testing.T) {
	for _, c := range []struct {
		args []string
		sig  syscall.Signal
		want string
	}{
		{[]string{"demo", "--items", "100000", "--clients", "50", "--progress", "never"}, syscall.SIGINT, "interrupted after 0 of"},
		{[]string{"sim", "brooker", "--trials", "100000", "--min-clients", "10", "--max-clients", "20"}, syscall.SIGTERM, "interrupted at"},
		{[]string{"sim", "throttle", "--clients", "1000", "--items", "200000"}, syscall.SIGINT, "interrupted after"},
		{[]string{"sim", "matrix", "--scenarios", "500"}, syscall.SIGTERM, "scenarios (seeds"},
	} {
		t.Run(c.args[0], func(t *testing.T) {
			sigs := make(chan os.Signal, 1)
			var out, errb bytes.Buffer
			done := make(chan int)
			go func() {
				done <- (&Program{}).Main(context.Background(), c.args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Signals: sigs})
			}()
			time.Sleep(300 * time.Millisecond)
			sent := time.Now()
			sigs <- c.sig
			select {
			case code := <-done:
				if took := time.Since(sent); took > time.Second {
					t.Errorf("stopped %v after the signal, want promptly (200 ms in practice; 1 s under -race)", took)
				}
				if code != 128+int(c.sig) || !strings.Contains(out.String(), c.want) || !strings.Contains(errb.String(), "interrupted by") {
					t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q and the signal named", code, out.String(), errb.String(), 128+int(c.sig), c.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("did not stop within 20 s of the signal")
			}
		})
	}
}

// Charts are written only where asked, into a directory that exists.
func TestChartsOnlyWhenAsked(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, errb := runMain(t, nil, "", "sim", "brooker", "--trials", "1", "--max-clients", "10")
	if code != 0 || strings.Contains(out, "chart:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errb)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("sim brooker without --out wrote %d files into the working directory", len(ents))
	}
	missing := filepath.Join(dir, "no", "such", "dir", "x")
	code, _, errb = runMain(t, nil, "", "sim", "brooker", "--trials", "1", "--max-clients", "10", "--out", missing)
	if code != ExitUsage || !strings.Contains(errb, "does not exist") {
		t.Errorf("--out into a missing directory: exit %d, stderr %q", code, errb)
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(err) {
		t.Errorf("a directory was created for --out (stat: %v)", err)
	}
	code, out, _ = runMain(t, nil, "", "sim", "brooker", "--trials", "1", "--max-clients", "10", "--out", filepath.Join(dir, "b"))
	if code != 0 || !strings.Contains(out, "chart: ") {
		t.Errorf("--out into an existing directory: exit %d, stdout %q", code, out)
	}
	for _, ext := range []string{".png", ".svg"} {
		if _, err := os.Stat(filepath.Join(dir, "b"+ext)); err != nil {
			t.Errorf("chart %s not written: %v", ext, err)
		}
	}
}

// TestParseLimiter: --limiter's settings land in the fields they name;
// the rest keep their zero (default).
func TestParseLimiter(t *testing.T) {
	spec := "headroom=0.05, probe=0.02,fairness=0.3,beta=0.6,burst=0.1,interval=50ms,calm-after=3s"
	for _, name := range limiterSettings { // what the help lists is what this test sets
		if !strings.Contains(spec, name+"=") {
			t.Errorf("the help lists %q; the test does not set it", name)
		}
	}
	c, err := parseLimiter(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := retry.LimiterConfig{Headroom: 0.05, Probe: 0.02, Fairness: 0.3, Beta: 0.6, Burst: 0.1, Interval: 50 * time.Millisecond, CalmAfter: 3 * time.Second}
	if c != want {
		t.Errorf("parseLimiter: %+v, want %+v", c, want)
	}
	if c, err := parseLimiter(""); err != nil || c != (retry.LimiterConfig{}) {
		t.Errorf("parseLimiter(\"\"): %+v, %v; want the zero config", c, err)
	}
}
