package retrytest_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/procs"
)

func TestMain(m *testing.M) {
	procs.Child(childEnv, loadChild)
	goleak.VerifyTestMain(m)
}

func start(t *testing.T, cfg retrytest.Config) *retrytest.Server {
	t.Helper()
	s, err := retrytest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestDynamoDBThrottleShape(t *testing.T) {
	s := start(t, retrytest.Config{Script: []retrytest.Fault{retrytest.FaultThrottle}})
	resp, body := do(t, client(t), "POST", s.URL, `{"TableName":"t"}`)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/x-amz-json-1.0" || resp.Header.Get("X-Amzn-Requestid") == "" {
		t.Errorf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, `"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"`) {
		t.Errorf("body %s", body)
	}
	if want := strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10); resp.Header.Get("X-Amz-Crc32") != want {
		t.Errorf("x-amz-crc32 %q, want %s", resp.Header.Get("X-Amz-Crc32"), want)
	}
	// Accepted answers carry a correct checksum too.
	resp, body = do(t, client(t), "POST", s.URL, `{}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Crc32") != strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10) {
		t.Errorf("accepted: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestGenericThrottleRetryAfter(t *testing.T) {
	s := start(t, retrytest.Config{Shape: retrytest.TooManyRequests, RetryAfter: 3 * time.Second, AmzRetryAfter: 250 * time.Millisecond, Script: []retrytest.Fault{retrytest.FaultThrottle}})
	resp, _ := do(t, client(t), "GET", s.URL, "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || resp.Header.Get("X-Amz-Retry-After") != "250" {
		t.Errorf("429: %d %v", resp.StatusCode, resp.Header)
	}
	s2 := start(t, retrytest.Config{Shape: retrytest.Unavailable, RetryAfter: time.Minute, RetryAfterDate: true, Script: []retrytest.Fault{retrytest.FaultThrottle}})
	resp, _ = do(t, client(t), "GET", s2.URL, "")
	d, err := http.ParseTime(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 503 || err != nil || time.Until(d) < 58*time.Second || time.Until(d) > 61*time.Second {
		t.Errorf("503 date: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestCapacityGlobalAndPerKey(t *testing.T) {
	const rate, burst = 2, 10
	s := start(t, retrytest.Config{Rate: rate, Burst: burst, Key: retrytest.DynamoDBTable})
	c := client(t)
	accepted := map[string]int{}
	t0 := time.Now()
	for i := range 40 {
		table := []string{"a", "b"}[i%2]
		if resp, _ := do(t, c, "POST", s.URL, `{"TableName":"`+table+`"}`); resp.StatusCode == 200 {
			accepted[table]++
		}
	}
	// Each table: its own burst, plus what the rate refilled meanwhile.
	refill := int(time.Since(t0).Seconds()*rate) + 1
	for _, tb := range []string{"a", "b"} {
		if accepted[tb] < burst || accepted[tb] > burst+refill {
			t.Errorf("table %s: %d accepted of 20, want the burst (%d) plus at most %d refilled", tb, accepted[tb], burst, refill)
		}
	}
	tot := s.Counters().Total
	if tot.Accepted+tot.Throttled != 40 || tot.Accepted != accepted["a"]+accepted["b"] {
		t.Errorf("counters %+v", tot)
	}
}

func TestFaultsScriptResetOutage(t *testing.T) {
	var handled atomic.Int64
	s := start(t, retrytest.Config{
		Script: []retrytest.Fault{retrytest.Fault500, retrytest.Fault502, retrytest.Fault503, retrytest.Fault504, retrytest.FaultReset, retrytest.FaultResetAfter, retrytest.FaultNone},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handled.Add(1)
			io.WriteString(w, "ok")
		}),
	})
	c := client(t)
	for _, want := range []int{500, 502, 503, 504} {
		if resp, _ := do(t, c, "GET", s.URL, ""); resp.StatusCode != want {
			t.Errorf("got %d, want %d", resp.StatusCode, want)
		}
	}
	// POST: net/http itself resends an idempotent request that fails on a
	// reused connection before any answer, which would hide the reset.
	for i := range 2 {
		req, _ := http.NewRequest("POST", s.URL, strings.NewReader("x"))
		_, err := c.Do(req)
		if err == nil || !(errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "EOF")) {
			t.Errorf("reset %d: err %v, want a connection reset", i, err)
		}
	}
	if handled.Load() != 1 {
		t.Errorf("handler ran %d times, want once (for the reset-after request)", handled.Load())
	}
	if resp, body := do(t, c, "GET", s.URL, ""); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the script: %d %q", resp.StatusCode, body)
	}
	if tot := s.Counters().Total; tot.Faulted != 6 || tot.Accepted != 1 {
		t.Errorf("counters %+v", tot)
	}

	o := start(t, retrytest.Config{Outages: []retrytest.Window{{From: 0, To: time.Hour}}})
	if resp, _ := do(t, c, "GET", o.URL, ""); resp.StatusCode != 503 {
		t.Errorf("in outage: %d", resp.StatusCode)
	}
}

func TestProbabilitiesAndLatency(t *testing.T) {
	s := start(t, retrytest.Config{P500: 0.3, P503: 0.2, Latency: 2 * time.Millisecond, Seed: 42})
	c := client(t)
	codes := map[int]int{}
	t0 := time.Now()
	for range 200 {
		resp, _ := do(t, c, "GET", s.URL, "")
		codes[resp.StatusCode]++
	}
	if time.Since(t0) < 400*time.Millisecond {
		t.Errorf("200 requests with 2ms latency took %v", time.Since(t0))
	}
	if codes[500] < 40 || codes[500] > 80 || codes[503] < 20 || codes[503] > 60 || codes[200] < 80 {
		t.Errorf("codes %v, want about 60/40/100", codes)
	}
}

func TestReverseProxyAndCountersJSON(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "upstream got %s %s %s", r.Method, r.URL.Path, b)
	}))
	defer up.Close()
	s := start(t, retrytest.Config{Upstream: up.URL, Script: []retrytest.Fault{retrytest.FaultThrottle}})
	c := client(t)
	if resp, _ := do(t, c, "PUT", s.URL+"/x", "hello"); resp.StatusCode != 400 {
		t.Errorf("scripted throttle: %d", resp.StatusCode)
	}
	if resp, body := do(t, c, "PUT", s.URL+"/x", "hello"); resp.StatusCode != 200 || body != "upstream got PUT /x hello" {
		t.Errorf("proxied: %d %q", resp.StatusCode, body)
	}
	got, err := retrytest.FetchCounters(context.Background(), c, s.URL)
	if err != nil || got.Total.Accepted != 1 || got.Total.Throttled != 1 || len(got.Buckets) == 0 || got.Interval != retrytest.Interval {
		t.Errorf("counters over HTTP: %+v %v", got, err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []struct {
		cfg   retrytest.Config
		field string
	}{
		{retrytest.Config{Rate: -1}, "Config.Rate"},
		{retrytest.Config{P500: 0.7, P503: 0.6}, "≤ 1"},
		{retrytest.Config{PReset: 2}, "Config.PReset"},
		{retrytest.Config{Addr: "0.0.0.0:0"}, "loopback"},
		{retrytest.Config{Addr: "nonsense"}, "Config.Addr"},
		{retrytest.Config{Upstream: "ftp://x"}, "Config.Upstream"},
		{retrytest.Config{Outages: []retrytest.Window{{From: time.Second, To: 0}}}, "Outages[0]"},
		{retrytest.Config{Latency: -time.Second}, "Config.Latency"},
		{retrytest.Config{CounterWindow: time.Millisecond}, "Config.CounterWindow"},
	} {
		if _, err := retrytest.Start(c.cfg); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Start(%+v) = %v, want an error naming %s", c.cfg, err, c.field)
		}
	}
	if _, err := retrytest.ParseShape("418"); err == nil {
		t.Error("ParseShape accepted 418")
	}
}

// TestUpstreamFailuresCountedApart: in proxy mode, a request let through
// that the upstream does not answer (here: nothing listens) is a 502
// counted as Upstream, not Accepted.
func TestUpstreamFailuresCountedApart(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	s := start(t, retrytest.Config{Upstream: deadURL})
	c := client(t)
	if resp, _ := do(t, c, "PUT", s.URL+"/x", "hello"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("dead upstream: %d, want 502", resp.StatusCode)
	}
	got := s.Counters().Total
	if got.Upstream != 1 || got.Accepted != 0 {
		t.Errorf("totals %+v, want 1 upstream failure and nothing accepted", got)
	}
}

// TestCounterWindowIsBounded: a long-running Server keeps the last
// CounterWindow of buckets, and every answer in its totals.
func TestCounterWindowIsBounded(t *testing.T) {
	s := start(t, retrytest.Config{CounterWindow: retrytest.Interval})
	c := client(t)
	for range 4 {
		do(t, c, "PUT", s.URL+"/x", "hello")
		time.Sleep(120 * time.Millisecond) // a new bucket each time
	}
	got := s.Counters()
	if got.Total.Accepted != 4 || len(got.Buckets) > 2 || got.First < 2 {
		t.Errorf("counters %+v: want 4 accepted in all, at most 2 buckets kept, the first ones dropped", got)
	}
	n := 0
	for _, b := range got.Buckets {
		n += b.Accepted
	}
	if n < 1 || n > 2 {
		t.Errorf("%d answers in the kept buckets, want the last one or two", n)
	}
}
