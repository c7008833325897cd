package redisretry_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jittered/retry"
	"github.com/jittered/retry/redisretry"
	"github.com/redis/go-redis/v9"
)

// bucket is the throttled service of these tests: a token bucket of rate
// per second and burst tokens, refusing with a throttle when empty.
type bucket struct {
	mu          sync.Mutex
	rate, burst float64
	tokens      float64
	last        time.Time
	acc, thr    atomic.Int64
}

func newBucket(rate, burst float64) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

var errThrottled = errors.New("ThrottlingException")

func (b *bucket) call(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		b.thr.Add(1)
		return retry.Throttle(errThrottled)
	}
	b.tokens--
	b.acc.Add(1)
	return nil
}

func newLimiter(t *testing.T, rdb redis.UniversalClient, cfg redisretry.Config) *redisretry.Limiter {
	t.Helper()
	l, err := redisretry.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func policy(l retry.Limiter) *retry.Policy {
	return &retry.Policy{
		MaxAttempts:      10,
		ThrottleAttempts: 100,
		Backoff:          retry.Exponential{Base: 10 * time.Millisecond, Cap: 200 * time.Millisecond},
		ThrottleBackoff:  retry.Exponential{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond},
		Jitter:           retry.FullJitter,
		Limiter:          l,
	}
}

// write runs items writes through p with writers goroutines; it returns
// the number that failed.
func write(p *retry.Policy, b *bucket, writers, items int) int {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(items) {
				if err := p.Do(context.Background(), b.call); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

func TestConfigValidate(t *testing.T) {
	if _, err := redisretry.New(nil, redisretry.Config{Key: "k"}); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("New(nil): %v, want an error about the nil client", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, c := range []struct {
		cfg  redisretry.Config
		want string
	}{
		{redisretry.Config{}, "Config.Key is empty"},
		{redisretry.Config{Key: "k", Interval: time.Millisecond}, "Config.Interval = 1ms"},
		{redisretry.Config{Key: "k", Timeout: -time.Second}, "Config.Timeout = -1s"},
		{redisretry.Config{Key: "k", TTL: time.Millisecond}, "Config.TTL = 1ms"},
		{redisretry.Config{Key: "k", Lease: time.Hour}, "Config.Lease = 1h0m0s"},
		{redisretry.Config{Key: "k", Beta: 1}, "Config.Beta = 1"},
		{redisretry.Config{Key: "k", Headroom: -0.1}, "Config.Headroom = -0.1"},
	} {
		_, err := redisretry.New(rdb, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "redisretry") {
			t.Errorf("New(%+v): %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	if _, err := redisretry.New(rdb, redisretry.Config{Key: "k"}); err != nil {
		t.Errorf("New with only a key: %v", err)
	}
}

// TestCalmCostsNoRoundTripPerAttempt: while nothing is throttled, attempts
// go out at once and the process talks to Redis about once per Interval,
// not once per attempt.
func TestCalmCostsNoRoundTripPerAttempt(t *testing.T) {
	s := startRedis(t)
	l := newLimiter(t, client(t, s), redisretry.Config{Key: t.Name()})
	b := newBucket(1e9, 1e9)
	p := policy(l)
	start := time.Now()
	if n := write(p, b, 8, 20000); n != 0 {
		t.Fatalf("%d writes failed", n)
	}
	el := time.Since(start)
	st := l.Stats()
	bound := uint64(el/redisretry.DefaultInterval) + 3
	if st.Commands > bound || st.Commands == 0 {
		t.Errorf("%d Redis commands for 20000 calm attempts in %v; want 1..%d (about one per Interval)", st.Commands, el, bound)
	}
	if r, limiting := l.Rate(); limiting {
		t.Errorf("limiting at %.1f/s with no throttle", r)
	}
}

// TestFleetSharesOneLine: four processes' limiters (four Redis clients, one
// key) and their writers against one service of 200/s: together they send
// about its capacity, few attempts are throttled, no write fails, and they
// talk to Redis far less than once per attempt.
func TestFleetSharesOneLine(t *testing.T) {
	s := startRedis(t)
	b := newBucket(200, 10)
	const k, items = 4, 200
	var ls []*redisretry.Limiter
	for range k {
		// Timeout 1 s: a fallback under the race detector's load is not what
		// this test is about (TestRedisDownFallsBackAndRejoins is).
		ls = append(ls, newLimiter(t, client(t, s), redisretry.Config{Key: t.Name(), Timeout: time.Second}))
	}
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, l := range ls {
		wg.Go(func() { failed.Add(int64(write(policy(l), b, 10, items))) })
	}
	wg.Wait()
	el := time.Since(start)
	ideal := time.Duration(float64(k*items-10) / 200 * float64(time.Second))
	var cmds uint64
	for _, l := range ls {
		cmds += l.Stats().Commands
		if l.FellBack() {
			t.Errorf("a limiter fell back to local: %+v", l.Stats())
		}
	}
	acc, thr := b.acc.Load(), b.thr.Load()
	attempts := acc + thr
	t.Logf("wall %v (ideal %v), %d accepted, %d throttled, %d Redis commands (%.3f per attempt)", el, ideal, acc, thr, cmds, float64(cmds)/float64(attempts))
	if failed.Load() != 0 {
		t.Errorf("%d writes failed", failed.Load())
	}
	if el > ideal*3/2 {
		t.Errorf("wall %v, more than 1.5× the ideal %v", el, ideal)
	}
	if float64(thr) > 0.25*float64(attempts) {
		t.Errorf("%d of %d attempts throttled (> 25 %%): the fleet did not back off as one", thr, attempts)
	}
	if float64(cmds) > 0.6*float64(attempts) {
		t.Errorf("%d Redis commands for %d attempts: want ≤ 0.6 per attempt", cmds, attempts)
	}
}

// TestLateJoinerTakesItsPlace: a process that starts while the fleet is
// limiting paces from its first reservation.
func TestLateJoinerTakesItsPlace(t *testing.T) {
	s := startRedis(t)
	a := newLimiter(t, client(t, s), redisretry.Config{Key: t.Name()})
	now := time.Now()
	a.ReserveAt(now, time.Time{}, time.Time{})
	for range 20 {
		a.ObserveAt(now, retry.OutcomeAccepted)
	}
	a.ObserveAt(now, retry.OutcomeThrottled)
	waitFor(t, time.Second, func() bool { _, on := a.Rate(); return on }, "the first process to start limiting")
	b := newLimiter(t, client(t, s), redisretry.Config{Key: t.Name()})
	b.ReserveAt(time.Now(), time.Time{}, time.Time{})
	if r, on := b.Rate(); !on || r <= 0 {
		t.Errorf("a late joiner after its first reservation: rate %v limiting %v; want the fleet's rate", r, on)
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, what string) {
	t.Helper()
	for end := time.Now().Add(d); !ok(); {
		if time.Now().After(end) {
			t.Fatalf("after %v: not %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestScriptFlushReloads: after SCRIPT FLUSH (or a Redis restart) the
// script is loaded again by itself; nothing falls back.
func TestScriptFlushReloads(t *testing.T) {
	s := startRedis(t)
	rdb := client(t, s)
	l := newLimiter(t, rdb, redisretry.Config{Key: t.Name()})
	l.ReserveAt(time.Now(), time.Time{}, time.Time{})
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	n := l.Stats().Commands
	l.ObserveAt(time.Now().Add(time.Second), retry.OutcomeThrottled) // reported at once
	waitFor(t, time.Second, func() bool { return l.Stats().Commands > n }, "a report after SCRIPT FLUSH")
	l.Close()
	if st := l.Stats(); st.Fallbacks != 0 {
		t.Errorf("fell back after SCRIPT FLUSH: %+v", st)
	}
	if ex, _ := rdb.ScriptExists(context.Background(), "").Result(); len(ex) == 0 {
		t.Log("(SCRIPT EXISTS answered nothing)")
	}
	if typ := rdb.Type(context.Background(), l.Key()).Val(); typ != "hash" {
		t.Errorf("the key's type after the report: %q, want hash", typ)
	}
}

// TestGarbageStateIsRepaired: a key of the wrong type, or fields that are
// not numbers in range, are reset — reported in Stats.Repairs — and the
// limiter goes on; nothing panics or falls back.
func TestGarbageStateIsRepaired(t *testing.T) {
	s := startRedis(t)
	rdb := client(t, s)
	ctx := context.Background()
	l := newLimiter(t, rdb, redisretry.Config{Key: t.Name()})
	if err := rdb.Set(ctx, l.Key(), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	l.ReserveAt(time.Now(), time.Time{}, time.Time{})
	if st := l.Stats(); st.Repairs != 1 || st.Fallbacks != 0 {
		t.Errorf("after a string in the key: %+v, want 1 repair, no fallback", st)
	}
	if typ := rdb.Type(ctx, l.Key()).Val(); typ != "hash" {
		t.Errorf("the key's type after the repair: %q, want hash", typ)
	}
	for _, bad := range []string{"abc", "-5", "inf", "nan"} {
		n := l.Stats().Repairs
		if err := rdb.HSet(ctx, l.Key(), "rate", bad).Err(); err != nil {
			t.Fatal(err)
		}
		l.ObserveAt(time.Now().Add(time.Hour), retry.OutcomeThrottled)
		waitFor(t, time.Second, func() bool { return l.Stats().Repairs == n+1 }, "a repair of rate="+bad)
		if l.FellBack() {
			t.Errorf("rate=%q: fell back", bad)
		}
	}
}

// TestKeyExpires: the fleet's key lives TTL after its last use.
func TestKeyExpires(t *testing.T) {
	s := startRedis(t)
	rdb := client(t, s)
	ctx := context.Background()
	l := newLimiter(t, rdb, redisretry.Config{Key: t.Name(), TTL: time.Second})
	l.ReserveAt(time.Now(), time.Time{}, time.Time{})
	if ttl := rdb.PTTL(ctx, l.Key()).Val(); ttl <= 0 || ttl > time.Second {
		t.Fatalf("PTTL %v after a use; want in (0, 1s]", ttl)
	}
	time.Sleep(1300 * time.Millisecond)
	if n := rdb.Exists(ctx, l.Key()).Val(); n != 0 {
		t.Errorf("the key still exists 1.3 s after its last use with TTL 1 s")
	}
}

// TestRedisDownFallsBackAndRejoins: Redis killed mid-run and restarted on
// the same port: the writes go on through the local limiter (none fails),
// the process falls back within Timeout and rejoins within RetryAfter of
// the restart.
func TestRedisDownFallsBackAndRejoins(t *testing.T) {
	s := startRedis(t)
	l := newLimiter(t, client(t, s), redisretry.Config{Key: t.Name(), Timeout: 50 * time.Millisecond, RetryAfter: 200 * time.Millisecond})
	b := newBucket(300, 10)
	p := policy(l)
	done := make(chan int)
	go func() { done <- write(p, b, 10, 900) }() // about 3 s at 300/s
	time.Sleep(500 * time.Millisecond)
	s.Stop()
	waitFor(t, time.Second, l.FellBack, "fallen back after Redis was killed")
	time.Sleep(500 * time.Millisecond)
	restart(t, s)
	waitFor(t, 2*time.Second, func() bool { return !l.FellBack() }, "rejoined after Redis came back")
	if n := <-done; n != 0 {
		t.Errorf("%d writes failed while Redis was down", n)
	}
	if st := l.Stats(); st.Fallbacks < 1 || st.Rejoins < 1 {
		t.Errorf("stats %+v: want at least one fallback and one rejoin", st)
	}
}

// TestRedisNeverHoldsACallerPastItsDeadline: a Redis that accepts
// connections and never answers makes a reservation with a 30 ms deadline
// return within about 30 ms, on the local limiter.
func TestRedisNeverHoldsACallerPastItsDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c) // read nothing, answer nothing
			mu.Unlock()
		}
	})
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, ReadTimeout: 300 * time.Millisecond})
	defer rdb.Close()
	l, err := redisretry.New(rdb, redisretry.Config{Key: t.Name()}) // Timeout 100 ms
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, _, ok := l.ReserveAt(start, time.Time{}, start.Add(30*time.Millisecond))
	if el := time.Since(start); el > 80*time.Millisecond {
		t.Errorf("ReserveAt with a 30 ms deadline took %v against a Redis that never answers", el)
	}
	// The caller's deadline cut the command short: that says nothing of
	// Redis, so nothing falls back yet; the caller goes on.
	if !ok || l.FellBack() {
		t.Errorf("with a 30 ms deadline: ok %v, fell back %v; want a slot and no fallback", ok, l.FellBack())
	}
	// A report bounded by Timeout (100 ms) and unanswered: fall back.
	l.ObserveAt(time.Now(), retry.OutcomeThrottled)
	waitFor(t, time.Second, l.FellBack, "fallen back after Timeout without an answer")
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "no answer from Redis within 100ms") {
		t.Errorf("Err() = %v, want the timeout", err)
	}
}

// TestTimeToShare pins the fleet benchmarks' join measure: the start of
// the first 100 ms window holding 90 % of the share's writes.
func TestTimeToShare(t *testing.T) {
	start := time.Unix(100, 0)
	ms := func(v ...int) []time.Time {
		var at []time.Time
		for _, x := range v {
			at = append(at, start.Add(time.Duration(x)*time.Millisecond))
		}
		return at
	}
	// Share 100/s: 9 writes in 100 ms. One write every 10 ms from 500 ms:
	// the window [500, 600) is the first to hold 9 (the 9th at 580 ms,
	// window begins at 480 ms).
	var steady []int
	for x := 500; x < 1000; x += 10 {
		steady = append(steady, x)
	}
	if got := timeToShare(ms(steady...), start, 100, 100*time.Millisecond); got != 480*time.Millisecond {
		t.Errorf("steady from 500 ms: %v, want 480ms", got)
	}
	// From the start: 0, not negative.
	if got := timeToShare(ms(0, 10, 20, 30, 40, 50, 60, 70, 80), start, 100, 100*time.Millisecond); got != 0 {
		t.Errorf("at share from the start: %v, want 0", got)
	}
	// One write every 20 ms never holds 9 in 100 ms; unsorted input is sorted.
	if got := timeToShare(ms(200, 0, 100, 20, 40, 60, 80, 120, 140, 160, 180), start, 100, 100*time.Millisecond); got != -1 {
		t.Errorf("half the share: %v, want -1", got)
	}
}

// never is a local limiter that never limits: what a process's own
// Goodput limiter is when the fleet kept it from being throttled.
type never struct{}

func (never) ReserveAt(now, earliest, deadline time.Time) (retry.Ticket, time.Duration, bool) {
	return 0, max(earliest.Sub(now), 0), true
}
func (never) WaitAt(time.Time, retry.Ticket) time.Duration { return 0 }
func (never) CancelAt(time.Time, retry.Ticket)             {}
func (never) ObserveAt(time.Time, retry.Outcome)           {}

// TestFallbackPacesAtItsShare: a process that falls back while the fleet
// limits goes on at the pace it had (its use of the fleet's slots), not
// unpaced on a local limiter that never saw a throttle.
func TestFallbackPacesAtItsShare(t *testing.T) {
	s := startRedis(t)
	rdb := client(t, s)
	l := newLimiter(t, rdb, redisretry.Config{Key: t.Name(), Timeout: 50 * time.Millisecond, RetryAfter: time.Minute, Local: never{}})
	// The fleet limits at 400/s.
	if err := rdb.HSet(context.Background(), l.Key(), map[string]any{"rate": 400, "meas": 1, "peak": 400,
		"ps": time.Now().UnixMicro(), "tat": 0, "lthr": time.Now().UnixMicro()}).Err(); err != nil {
		t.Fatal(err)
	}
	// One caller takes the slots it is given for 0.6 s.
	for end := time.Now().Add(600 * time.Millisecond); time.Now().Before(end); {
		now := time.Now()
		tk, w, ok := l.ReserveAt(now, time.Time{}, time.Time{})
		if !ok {
			t.Fatal("refused without a deadline")
		}
		time.Sleep(w)
		for tk != 0 {
			if w = l.WaitAt(time.Now(), tk); w <= 0 {
				break
			}
			time.Sleep(w)
		}
		l.ObserveAt(time.Now(), retry.OutcomeAccepted)
	}
	if r, on := l.Rate(); !on {
		t.Fatalf("the fleet is not limiting (rate %v)", r)
	}
	s.Stop()
	waitFor(t, 2*time.Second, func() bool {
		l.ReserveAt(time.Now(), time.Time{}, time.Time{})
		return l.FellBack()
	}, "fallen back after Redis was killed")
	now := time.Now().Add(time.Second) // past any slot leased before
	var last time.Duration
	for i := range 20 {
		_, w, ok := l.ReserveAt(now, time.Time{}, time.Time{})
		if !ok || w < last {
			t.Fatalf("reservation %d on fallback: wait %v (ok %v) after %v; want ever later slots", i, w, ok, last)
		}
		last = w
	}
	// One caller used up to the fleet's 400/s (plus Headroom on fallback):
	// 20 slots at that pace span about 19/400 s; unpaced, 0.
	if lo, hi := 19*time.Second/800, 19*time.Second/200; last < lo || last > hi {
		t.Errorf("20 reservations at once on fallback: the last waits %v; want %v to %v (paced at the share it had)", last, lo, hi)
	}
}
