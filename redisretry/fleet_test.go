package redisretry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/internal/sim"
	"github.com/jittered/retry/redisretry"
	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/procs"
	"github.com/redis/go-redis/v9"
)

// fleetChildEnv, when set, makes the test binary a fleet client process
// (procs.Child, in TestMain): it writes its share of the items to the URL
// through httpretry with the recommended Policy — its limiter its own
// (Redis empty) or the fleet's shared one — and answers a fleetResult.
const fleetChildEnv = "REDISRETRY_FLEET_CHILD"

type fleetArgs struct {
	URL, Redis, Key string
	Items, Writers  int
	Seed            uint64
	StartNs         int64
	Timeout         time.Duration // redisretry.Config.Timeout (0: the default)
	// Share, when not 0, is the process's fair share of the service
	// (writes/s): it reports how long it took to get there (ShareNs).
	Share float64
}

type fleetResult struct {
	EndNs              int64
	Attempts, Failures int
	Commands           uint64
	Leased, Expired    uint64
	Fallbacks          uint64
	Err                string // the last Redis error, if any
	// ShareNs is the time from the start to the first 100 ms in which the
	// process completed writes at 90 % of its Share or more (-1: never).
	ShareNs int64
}

func TestMain(m *testing.M) {
	procs.Child(fleetChildEnv, fleetChild)
	testMain(m)
}

func fleetChild(a fleetArgs) (fleetResult, error) {
	p := sim.Recommended(a.Seed)
	var shared *redisretry.Limiter
	if a.Redis != "" {
		rdb := redis.NewClient(&redis.Options{Addr: a.Redis})
		defer rdb.Close()
		l, err := redisretry.New(rdb, redisretry.Config{Key: a.Key, Timeout: a.Timeout})
		if err != nil {
			return fleetResult{}, err
		}
		defer l.Close()
		p.Limiter, shared = l, l
	}
	time.Sleep(time.Until(time.Unix(0, a.StartNs)))
	done := &completions{}
	res, err := retrytest.RunLoad(context.Background(), retrytest.LoadConfig{
		URL: a.URL, Clients: a.Writers, Items: a.Items, Timeout: 3 * time.Minute,
		NewTransport: func(next http.RoundTripper) http.RoundTripper {
			done.next = &httpretry.Transport{Next: next, Policy: p}
			return done
		},
	})
	if err != nil {
		return fleetResult{}, err
	}
	out := fleetResult{EndNs: time.Unix(0, a.StartNs).Add(res.Wall).UnixNano(), Attempts: res.Attempts, Failures: res.Failures, ShareNs: -1}
	if a.Share > 0 {
		out.ShareNs = int64(timeToShare(done.at, time.Unix(0, a.StartNs), a.Share, 100*time.Millisecond))
	}
	if shared != nil {
		st := shared.Stats()
		out.Commands, out.Fallbacks, out.Leased, out.Expired = st.Commands, st.Fallbacks, st.Leased, st.Expired
		if err := shared.Err(); err != nil {
			out.Err = err.Error()
		}
	}
	return out, nil
}

// completions records when each write completed (its final answer a
// success), for the time to share.
type completions struct {
	next http.RoundTripper
	mu   sync.Mutex
	at   []time.Time
}

func (c *completions) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode < 300 {
		c.mu.Lock()
		c.at = append(c.at, time.Now())
		c.mu.Unlock()
	}
	return resp, err
}

// timeToShare is how long after start the first window of length w begins
// in which at least 90 % of share·w writes completed; -1 if none.
func timeToShare(at []time.Time, start time.Time, share float64, w time.Duration) time.Duration {
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	need := int(math.Ceil(0.9 * share * w.Seconds()))
	for i := range at {
		if j := i - need + 1; j >= 0 && at[i].Sub(at[j]) <= w {
			// at[j..i] fit in a window that begins at at[i]-w (or at start).
			return max(at[i].Add(-w).Sub(start), 0)
		}
	}
	return -1
}

type fleetRun struct {
	Ratio, Attempts, CmdsPerAttempt float64
	Throttles, Failures             int
	Fallbacks                       uint64
	Errs                            []string
	// Join is how long the late joiner took to reach its share (fleet.Late
	// set; -1: never).
	Join time.Duration
}

// fleet is one fleet run: K client processes writing Items in all
// (Writers in all) to one retrytest service of Rate writes/s (burst 100,
// 429 throttles, 1 ms service time) on loopback; with Redis, they share
// one redisretry limiter (of that Timeout).
type fleet struct {
	K, Items, Writers int
	Rate              float64
	Redis             string
	Timeout           time.Duration
	Seed              uint64
	// Late, when not 0: the last process starts this much after the others
	// and measures how long it takes to reach its share, Rate/K.
	Late time.Duration
}

func runFleet(t testing.TB, f fleet) fleetRun {
	t.Helper()
	k, items, rate := f.K, f.Items, f.Rate
	s, err := retrytest.Start(retrytest.Config{Rate: rate, Burst: 100, Latency: time.Millisecond, Shape: retrytest.TooManyRequests})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := time.Now()
	start := time.Now().Add(400 * time.Millisecond)
	key := fmt.Sprintf("fleet-%d-%d", f.Seed, time.Now().UnixNano())
	args := make([]fleetArgs, k)
	for i := range args {
		args[i] = fleetArgs{URL: s.URL, Redis: f.Redis, Key: key, Items: items / k, Writers: max(1, f.Writers/k), Seed: f.Seed*100 + uint64(i),
			StartNs: start.UnixNano(), Timeout: f.Timeout}
		if f.Late > 0 && i == k-1 {
			args[i].StartNs, args[i].Share = start.Add(f.Late).UnixNano(), rate/float64(k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	results, err := procs.Run[fleetArgs, fleetResult](ctx, fleetChildEnv, args)
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("REDISRETRY_TIMELINES"); dir != "" && f.Seed == 1 && f.Late == 0 {
		writeTimeline(t, dir, f, s.Counters(), start.Sub(served))
	}
	n := items / k * k
	ideal := float64(n) / rate
	r := fleetRun{Join: -1}
	var end int64
	attempts := 0
	var cmds uint64
	for _, c := range results {
		end = max(end, c.EndNs)
		attempts += c.Attempts
		r.Failures += c.Failures
		cmds += c.Commands
		r.Fallbacks += c.Fallbacks
		if c.Err != "" {
			r.Errs = append(r.Errs, c.Err)
		}
		if c.ShareNs >= 0 {
			r.Join = time.Duration(c.ShareNs)
		}
	}
	r.Ratio = time.Duration(end-start.UnixNano()).Seconds() / ideal
	r.Attempts = float64(attempts) / float64(n)
	r.Throttles = attempts - n
	r.CmdsPerAttempt = float64(cmds) / float64(attempts)
	return r
}

// TestFleetProcesses: 4 client processes sharing one redisretry limiter
// against a service of 1000 writes/s: none stalls, no write fails, and
// they talk to Redis far less than once per attempt. (Measured 2026-11-30:
// 1.05–1.25× ideal, 1.16–1.32 attempts per write, 0.06–0.07 commands per
// attempt; K = 4 is the shared limiter's weakest case — BENCHMARKS.md —
// so the bounds are those of a stall, not of a goal.)
func TestFleetProcesses(t *testing.T) {
	s := startRedis(t)
	// Timeout 1 s: under the race detector five instrumented processes on
	// two cores can hold a command past the default 100 ms. A fallback is
	// correct then and is logged, not failed: this test is about sharing
	// (TestRedisDownFallsBackAndRejoins is about falling back). CI once saw
	// a command unanswered for 1 s under -race.
	r := runFleet(t, fleet{K: 4, Items: 4000, Writers: 200, Rate: 1000, Redis: s.Addr, Timeout: time.Second, Seed: 1})
	if r.Fallbacks > 0 {
		t.Logf("%d fallbacks: %q", r.Fallbacks, r.Errs)
	}
	t.Logf("4 processes, shared limiter: %.3f× ideal, %.3f attempts/write, %d throttles, %.3f Redis commands per attempt", r.Ratio, r.Attempts, r.Throttles, r.CmdsPerAttempt)
	if r.Failures != 0 || r.Ratio > 1.6 || r.Attempts > 1.6 || r.CmdsPerAttempt > 0.3 {
		t.Errorf("4 processes, shared limiter: %.3f× ideal, %.3f attempts/write, %d failures, %d fallbacks (%q), %.3f commands per attempt",
			r.Ratio, r.Attempts, r.Failures, r.Fallbacks, r.Errs, r.CmdsPerAttempt)
	}
}

// timeline is what the service saw of one fleet run, per 100 ms from the
// processes' start: the data of the fleet chart (bench/cmd/fleetchart).
type timeline struct {
	K         int
	Mode      string // "local" or "shared"
	Interval  time.Duration
	Accepted  []int
	Throttled []int
}

// writeTimeline writes dir/fleet-K<k>-<mode>.json.
func writeTimeline(t testing.TB, dir string, f fleet, c retrytest.Counters, lead time.Duration) {
	t.Helper()
	tl := timeline{K: f.K, Mode: "local", Interval: c.Interval}
	if f.Redis != "" {
		tl.Mode = "shared"
	}
	skip := int(lead/c.Interval) - c.First
	for i, b := range c.Buckets {
		if i >= skip {
			tl.Accepted = append(tl.Accepted, b.Accepted)
			tl.Throttled = append(tl.Throttled, b.Throttled)
		}
	}
	out, err := json.Marshal(tl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("%s/fleet-K%d-%s.json", dir, f.K, tl.Mode), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fleetBench runs one sub-benchmark per K and mode ("local": a limiter
// per process; "shared": one redisretry limiter on a real redis-server at
// addr), each doing REDISRETRY_REPS runs (default 10) of run.
func fleetBench(b *testing.B, ks []int, run func(b *testing.B, k int, addr string, reps int)) {
	if dir := os.Getenv("REDISRETRY_TIMELINES"); dir != "" {
		// Made before the runs, not found missing after each of them.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatalf("REDISRETRY_TIMELINES: %v", err)
		}
	}
	reps := 10
	if v, err := strconv.Atoi(os.Getenv("REDISRETRY_REPS")); err == nil && v > 0 {
		reps = v
	}
	s := startRedis(b)
	for _, k := range ks {
		for _, mode := range []string{"local", "shared"} {
			b.Run(fmt.Sprintf("K=%d/%s", k, mode), func(b *testing.B) {
				addr := ""
				if mode == "shared" {
					addr = s.Addr
				}
				for b.Loop() {
					run(b, k, addr, reps)
				}
			})
		}
	}
}

// BenchmarkFleet is issue 14's fleet benchmark: K = 1, 4, 8 and 16 client
// processes writing N = 20,000 items in all (200 writers in all) to one
// retrytest service of 1000 writes/s on loopback, each process with its
// own limiter ("local") or all sharing one redisretry limiter ("shared"),
// REDISRETRY_REPS runs each (default 10). Ideal = N ÷ 1000 = 20 s. With
// REDISRETRY_TIMELINES=dir, the first run of each writes what the service
// saw to dir, for the chart (bench/cmd/fleetchart).
//
//	cd redisretry && go test -run '^$' -bench Fleet -benchtime 1x -timeout 120m
func BenchmarkFleet(b *testing.B) {
	fleetBench(b, []int{1, 4, 8, 16}, func(b *testing.B, k int, addr string, reps int) {
		var ratios, attempts, thr, cmds []float64
		failures := 0
		for i := range reps {
			r := runFleet(b, fleet{K: k, Items: 20000, Writers: 200, Rate: 1000, Redis: addr, Seed: uint64(i + 1)})
			ratios = append(ratios, r.Ratio)
			attempts = append(attempts, r.Attempts)
			thr = append(thr, float64(r.Throttles))
			cmds = append(cmds, r.CmdsPerAttempt)
			failures += r.Failures
		}
		for _, v := range [][]float64{ratios, attempts, thr, cmds} {
			slices.Sort(v)
		}
		q := func(v []float64, p float64) float64 { return v[min(len(v)-1, int(math.Ceil(p*float64(len(v))))-1)] }
		b.ReportMetric(q(ratios, 0.5), "median-wall/ideal")
		b.ReportMetric(ratios[len(ratios)-1], "worst-wall/ideal")
		b.ReportMetric(q(thr, 0.5), "median-throttles")
		b.ReportMetric(q(attempts, 0.5), "median-attempts/N")
		if addr != "" {
			b.ReportMetric(q(cmds, 0.5), "median-redis-cmds/attempt")
		}
		b.ReportMetric(float64(failures), "failures")
	})
}

// BenchmarkFleetJoin measures how long a process that joins a busy fleet
// takes to reach its share: K−1 processes write to one retrytest service
// of 1000 writes/s, the K-th starts 3 s later (N = 8000 items in all, 200
// writers in all), each with its own limiter ("local") or all sharing one
// redisretry limiter ("shared"); the late process's time to share is from
// its start to the first 100 ms in which it completed at least 90 % of
// 1000/K writes per second. REDISRETRY_REPS runs each (default 10).
//
//	cd redisretry && go test -run '^$' -bench FleetJoin -benchtime 1x -timeout 60m
func BenchmarkFleetJoin(b *testing.B) {
	fleetBench(b, []int{4, 8, 16}, func(b *testing.B, k int, addr string, reps int) {
		var joins []float64
		never, failures := 0, 0
		for i := range reps {
			r := runFleet(b, fleet{K: k, Items: 8000, Writers: 200, Rate: 1000, Redis: addr, Seed: uint64(i + 1), Late: 3 * time.Second})
			failures += r.Failures
			if r.Join < 0 {
				never++
				continue
			}
			joins = append(joins, float64(r.Join)/float64(time.Millisecond))
		}
		slices.Sort(joins)
		if len(joins) > 0 {
			b.ReportMetric(joins[(len(joins)-1)/2], "median-join-ms")
			b.ReportMetric(joins[len(joins)-1], "worst-join-ms")
		}
		b.ReportMetric(float64(never), "never-joined")
		b.ReportMetric(float64(failures), "failures")
	})
}
