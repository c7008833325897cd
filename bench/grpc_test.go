package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkGRPCThrottled is issue 15's scenario: N = 10,000 unary calls
// from C goroutines through one connection to a gRPC service accepting
// 1000 calls/s (burst 100), answering RESOURCE_EXHAUSTED beyond, for each
// retrier. Run with -benchtime 1x: each run takes about 10 s or more.
func BenchmarkGRPCThrottled(b *testing.B) {
	const rate, burst, items = 1000, 100, 10000
	ideal := time.Duration(float64(items-burst) / rate * float64(time.Second))
	for _, clients := range []int{200, 1000} {
		for _, t := range GRPCTargets() {
			b.Run(fmt.Sprintf("C=%d/%s", clients, t.Name), func(b *testing.B) {
				for b.Loop() {
					s, err := StartGRPC(rate, burst)
					if err != nil {
						b.Fatal(err)
					}
					res, err := RunGRPCLoad(context.Background(), t, s, clients, items, Shared, 5*time.Minute)
					s.Stop()
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(res.Wall.Seconds()/ideal.Seconds(), "wall/ideal")
					b.ReportMetric(float64(res.Accepted+res.Throttled)/items, "attempts/call")
					b.ReportMetric(float64(res.Failures), "failures")
					b.ReportMetric(float64(res.P99.Milliseconds()), "p99-ms")
				}
			})
		}
	}
}

// TestGRPCLoadSmall runs each retrier briefly: 300 calls from 20
// goroutines at 500/s. The recommended interceptor fails none.
func TestGRPCLoadSmall(t *testing.T) {
	for _, tg := range GRPCTargets() {
		s, err := StartGRPC(500, 20)
		if err != nil {
			t.Fatal(err)
		}
		res, err := RunGRPCLoad(context.Background(), tg, s, 20, 300, Shared, time.Minute)
		s.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v, %d calls, %d failures, %d accepted, %d throttled", tg.Name, res.Wall, res.Calls, res.Failures, res.Accepted, res.Throttled)
		if res.Calls != 300 || res.Accepted+res.Throttled < int64(300-res.Failures) {
			t.Errorf("%s: %d calls, server saw %d + %d", tg.Name, res.Calls, res.Accepted, res.Throttled)
		}
		if tg.Name == "jittered/retry grpcretry" && res.Failures != 0 {
			t.Errorf("%s: %d failures", tg.Name, res.Failures)
		}
	}
}
