package retrytest_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/internal/sim"
	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/procs"
)

// childEnv, when set, makes the test binary a load client process
// (procs.Child, in TestMain): it writes its share of the items to the URL
// through httpretry with the recommended Policy (its own limiter, as a
// separate process has), and answers a childResult.
const childEnv = "RETRYTEST_LOAD_CHILD"

type childArgs struct {
	URL     string
	Items   int
	Writers int
	Seed    uint64
	StartNs int64 // unix ns at which to start, so that all children start together
}

type childResult struct {
	EndNs    int64
	Attempts int
	Failures int
	Errors   map[string]int
}

func loadChild(a childArgs) (childResult, error) {
	time.Sleep(time.Until(time.Unix(0, a.StartNs)))
	res, err := retrytest.RunLoad(context.Background(), retrytest.LoadConfig{
		URL: a.URL, Clients: a.Writers, Items: a.Items, Timeout: 2 * time.Minute,
		NewTransport: func(next http.RoundTripper) http.RoundTripper {
			return &httpretry.Transport{Next: next, Policy: sim.Recommended(a.Seed)}
		},
	})
	if err != nil {
		return childResult{}, err
	}
	end := time.Unix(0, a.StartNs).Add(res.Wall)
	return childResult{EndNs: end.UnixNano(), Attempts: res.Attempts, Failures: res.Failures, Errors: res.Errors}, nil
}

// multiRun is one run: k client processes, each with its own limiter and
// items/k of the work and writers/k writers, against one retrytest service
// of rate writes/s (burst 100, 429 throttles) on loopback.
type multiRun struct {
	Ratio    float64 // wall ÷ ideal (ideal = items ÷ rate)
	Attempts float64 // attempts per item
	Failures int
	Shares   []float64 // each process's finish time ÷ ideal
}

func runMulti(t testing.TB, k, items, writers int, rate float64, seed uint64) multiRun {
	t.Helper()
	s, err := retrytest.Start(retrytest.Config{Rate: rate, Burst: 100, Latency: time.Millisecond, Shape: retrytest.TooManyRequests})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now().Add(300 * time.Millisecond) // time for every process to start
	args := make([]childArgs, k)
	for i := range args {
		args[i] = childArgs{URL: s.URL, Items: items / k, Writers: max(1, writers/k), Seed: seed*100 + uint64(i), StartNs: start.UnixNano()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := procs.Run[childArgs, childResult](ctx, childEnv, args)
	if err != nil {
		t.Fatal(err)
	}
	ideal := float64(items/k*k) / rate
	var r multiRun
	var end int64
	attempts := 0
	for _, c := range results {
		end = max(end, c.EndNs)
		attempts += c.Attempts
		r.Failures += c.Failures
		r.Shares = append(r.Shares, time.Duration(c.EndNs-start.UnixNano()).Seconds()/ideal)
	}
	r.Ratio = time.Duration(end-start.UnixNano()).Seconds() / ideal
	r.Attempts = float64(attempts) / float64(items/k*k)
	return r
}

// TestMultiProcessLoad: 4 client processes, each with its own limiter,
// share a service of 1000 writes/s on loopback: none stalls, the service
// is kept busy, and few attempts are throttled.
//
// Without the race detector (scripts/test-all.sh runs it so), 12 runs on
// 2026-12-08 gave 0.987–1.063 × ideal and 1.116–1.146 attempts per write:
// the bounds are 1.2 and 1.2, the issue's. Under -race the four client
// processes and the service share two cores at several times their
// normal CPU cost; 15 runs gave 1.08–1.29 attempts per write (CI once
// 1.302), so there the check is that nothing stalls or fails: 1.3 × ideal
// and 1.5 attempts.
func TestMultiProcessLoad(t *testing.T) {
	maxRatio, maxAttempts := 1.2, 1.2
	if raceEnabled {
		maxRatio, maxAttempts = 1.3, 1.5
	}
	r := runMulti(t, 4, 4000, 200, 1000, 1)
	t.Logf("4 processes: %.3f× ideal, %.3f attempts/write, finish ÷ ideal per process %.2f", r.Ratio, r.Attempts, r.Shares)
	if r.Failures != 0 || r.Ratio > maxRatio || r.Attempts > maxAttempts {
		t.Errorf("4 processes: %.3f× ideal, %.3f attempts/write, %d failures; want ≤ %.1f× ideal, ≤ %.1f attempts/write, 0 failures (race detector: %v)",
			r.Ratio, r.Attempts, r.Failures, maxRatio, maxAttempts, raceEnabled)
	}
}

// BenchmarkMultiProcess is the limiter issue's over-the-wire check: K = 1,
// 4 and 8 client processes (each its own limiter, N/K items, 200/K
// writers) against one retrytest service of 1000 writes/s, 20 runs each;
// it reports the distribution of wall ÷ ideal (N = 5000, ideal 5 s).
//
//	cd retrytest && go test -run '^$' -bench MultiProcess -benchtime 1x -timeout 60m
func BenchmarkMultiProcess(b *testing.B) {
	reps := 20
	if v, err := strconv.Atoi(os.Getenv("RETRYTEST_REPS")); err == nil && v > 0 {
		reps = v
	}
	for _, k := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			for b.Loop() {
				var ratios, attempts []float64
				failures := 0
				for i := range reps {
					r := runMulti(b, k, 5000, 200, 1000, uint64(i+1))
					ratios = append(ratios, r.Ratio)
					attempts = append(attempts, r.Attempts)
					failures += r.Failures
				}
				slices.Sort(ratios)
				slices.Sort(attempts)
				q := func(v []float64, p float64) float64 { return v[min(len(v)-1, int(math.Ceil(p*float64(len(v))))-1)] }
				b.ReportMetric(ratios[0], "best-wall/ideal")
				b.ReportMetric(q(ratios, 0.5), "median-wall/ideal")
				b.ReportMetric(q(ratios, 0.95), "p95-wall/ideal")
				b.ReportMetric(ratios[len(ratios)-1], "worst-wall/ideal")
				b.ReportMetric(q(attempts, 0.5), "median-attempts/N")
				b.ReportMetric(attempts[len(attempts)-1], "worst-attempts/N")
				b.ReportMetric(float64(failures), "failures")
			}
		})
	}
}
