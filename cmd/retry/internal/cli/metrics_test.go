package cli

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
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
	if code != 2 || !strings.Contains(stderr, "--metrics no-port-here") {
		t.Errorf("bad address: exit %d, stderr %q; want 2 naming the flag and value", code, stderr)
	}
}
