package retrytest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/internal/sim"
	"github.com/jittered/retry/retrytest"
)

// TestRunLoadSmall checks the load runner end to end on a small run.
func TestRunLoadSmall(t *testing.T) {
	s := start(t, retrytest.Config{Rate: 2000, Burst: 50, Shape: retrytest.TooManyRequests})
	res, err := retrytest.RunLoad(context.Background(), retrytest.LoadConfig{
		URL: s.URL, Clients: 20, Items: 500,
		NewTransport: func(next http.RoundTripper) http.RoundTripper {
			return &httpretry.Transport{Next: next, Policy: sim.Recommended(1)}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tot := s.Counters().Total
	if res.Failures != 0 || tot.Accepted != 500 || res.Attempts != tot.Accepted+tot.Throttled+tot.Faulted || res.P99 < res.P50 {
		t.Errorf("result %+v, server %+v", res, tot)
	}
	if _, err := retrytest.RunLoad(context.Background(), retrytest.LoadConfig{}); err == nil {
		t.Error("empty LoadConfig accepted")
	}
}

// BenchmarkHTTPLoad is the throttling scenario over real HTTP: C writers,
// N = 10,000 PUTs through httpretry to a retrytest service of R = 1000/s,
// burst 100, 1 ms service time, 429 throttles without hints. Each strategy
// is the model's (internal/sim) with the same Policy.
//
//	cd retrytest && go test -run '^$' -bench HTTPLoad -benchtime 1x -count 3 -timeout 30m
func BenchmarkHTTPLoad(b *testing.B) {
	const items, rate = 10000, 1000.0
	ideal := time.Duration(items / rate * float64(time.Second))
	for _, c := range []int{200, 1000} {
		for _, st := range sim.Strategies() {
			switch st.Name {
			case "naive (2ⁿ, no jitter)", "full jitter", "recommended":
			default:
				continue
			}
			b.Run(fmt.Sprintf("C=%d/%s", c, st.Name), func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					s, err := retrytest.Start(retrytest.Config{Rate: rate, Burst: 100, Latency: time.Millisecond, Shape: retrytest.TooManyRequests})
					if err != nil {
						b.Fatal(err)
					}
					res, err := retrytest.RunLoad(context.Background(), retrytest.LoadConfig{
						URL: s.URL, Clients: c, Items: items, Timeout: 3 * time.Minute,
						NewTransport: func(next http.RoundTripper) http.RoundTripper {
							return &httpretry.Transport{Next: next, Policy: st.New(uint64(i + 1))}
						},
					})
					s.Close()
					if err != nil {
						b.Fatal(err)
					}
					if res.Failures > 0 {
						b.Logf("run %d: %d failures: %v", i, res.Failures, res.Errors)
					}
					b.ReportMetric(res.Wall.Seconds()/ideal.Seconds(), "wall/ideal")
					b.ReportMetric(float64(res.Attempts)/items, "attempts/N")
					b.ReportMetric(float64(res.Failures), "failures")
					b.ReportMetric(float64(res.P99.Milliseconds()), "p99-ms")
				}
			})
		}
	}
}
