package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jittered/retry"
)

// TestMetricsEndpoint: a Policy observed through the endpoint shows its
// retries, give-ups and limiter in the Prometheus text format, over real
// HTTP on loopback.
func TestMetricsEndpoint(t *testing.T) {
	m, err := startMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, _ := retry.NewAdaptiveLimiter(retry.LimiterConfig{})
	p := &retry.Policy{MaxAttempts: 2, Backoff: retry.Constant{Interval: time.Millisecond}, Limiter: l}
	if err := m.observe(p, "demo-test"); err != nil {
		t.Fatal(err)
	}
	_ = p.Do(context.Background(), func(context.Context) error { return retry.Throttle(errors.New("429")) })

	resp, err := http.Get(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`retry_retries_total{`, `retry_kind="throttle"`, `retry_operation="demo-test"`,
		`retry_give_ups_total{`, `retry_reason="max_attempts"`,
		`retry_call_attempts_bucket{`, `retry_limiter_limiting{`, `retry_limiter="demo-test"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, text)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := http.Get(m.URL); err == nil {
		t.Error("the endpoint still answers after Close")
	}
}

func TestDemoMetricsFlag(t *testing.T) {
	code, out, stderr := runMain(t, nil, "", "demo", "--items", "50", "--clients", "5", "--rate", "500", "--burst", "20",
		"--strategies", "recommended", "--progress", "never", "--metrics", "127.0.0.1:0")
	if code != 0 || !strings.Contains(out, "Metrics: http://127.0.0.1:") {
		t.Errorf("exit %d\n%s%s", code, out, stderr)
	}
	code, _, stderr = runMain(t, nil, "", "demo", "--metrics", "no-port-here")
	if code != ExitUsage || !strings.Contains(stderr, "--metrics no-port-here") {
		t.Errorf("bad address: exit %d, stderr %q; want %d naming the flag and value", code, stderr, ExitUsage)
	}
}

// TestServeMetrics: retry serve --metrics counts its answers by outcome on
// a Prometheus endpoint, over loopback.
func TestServeMetrics(t *testing.T) {
	var out, errb syncBuffer
	sigs := make(chan os.Signal, 1)
	done := make(chan int)
	go func() {
		done <- Main(context.Background(), []string{"serve", "--rate", "5", "--burst", "1", "--metrics", "127.0.0.1:0"}, IO{Stdout: &out, Stderr: &errb, Signals: sigs})
	}()
	var url, metricsURL string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && (url == "" || metricsURL == ""); time.Sleep(10 * time.Millisecond) {
		url = strings.TrimSpace(out.String())
		if _, after, ok := strings.Cut(errb.String(), "metrics at "); ok {
			metricsURL, _, _ = strings.Cut(after, "\n")
		}
	}
	if url == "" || metricsURL == "" {
		t.Fatalf("no URLs printed: %q %q", out.String(), errb.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for range 4 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := c.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	acc, thr := metricValue(text, `outcome="accepted"`), metricValue(text, `outcome="throttled"`)
	if acc+thr != 4 || acc < 1 || thr < 1 {
		t.Errorf("retry_serve_requests_total: accepted %d, throttled %d; want 4 answers, both kinds:\n%s", acc, thr, text)
	}
	sigs <- syscall.SIGTERM
	if code := <-done; code != 0 && code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d", code)
	}
}

// metricValue finds the retry_serve_requests_total sample whose labels
// contain label.
func metricValue(text, label string) int {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "retry_serve_requests_total{") && strings.Contains(line, label) {
			var v int
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			return v
		}
	}
	return -1
}

// TestDemoProgressLines: without a terminal the demo prints a progress
// line every --progress-every, and a final one per strategy.
func TestDemoProgressLines(t *testing.T) {
	code, out, stderr := runMain(t, nil, "", "demo", "--items", "300", "--clients", "20", "--rate", "500", "--burst", "20",
		"--strategies", "recommended", "--progress", "lines", "--progress-every", "100ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	n := strings.Count(stderr, "retry: recommended: ")
	if n < 3 || !strings.Contains(stderr, "300/300 (100%)") {
		t.Errorf("%d progress lines, want a few and a final 300/300:\n%s", n, stderr)
	}
	if code, _, stderr := runMain(t, nil, "", "demo", "--progress", "bars"); code != ExitUsage || !strings.Contains(stderr, "--progress") {
		t.Errorf("--progress bars: exit %d, %q", code, stderr)
	}
}

// TestTerminalChart: --chart always draws the panels as text after the
// table (no colour codes when the output is not a terminal); a bad mode
// is refused before the run.
func TestTerminalChart(t *testing.T) {
	code, out, stderr := runMain(t, nil, "", "sim", "throttle", "--clients", "50", "--items", "500", "--chart", "always")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "Accepted writes per 100 ms, C = 50") || !strings.Contains(out, "— recommended") || !strings.Contains(out, "┤") {
		t.Errorf("no chart after the table:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes written to a non-terminal:\n%q", out)
	}
	if code, out, _ := runMain(t, nil, "", "sim", "throttle", "--clients", "50", "--items", "500"); code != 0 || strings.Contains(out, "┤") {
		t.Errorf("--chart auto drew a chart to a non-terminal (exit %d):\n%s", code, out)
	}
	if code, _, stderr := runMain(t, nil, "", "sim", "brooker", "--chart", "pie"); code != ExitUsage || !strings.Contains(stderr, "--chart") {
		t.Errorf("--chart pie: exit %d, %q", code, stderr)
	}
}
