package retry_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
	"github.com/jittered/retry/internal/sim"
)

// period drives one decision period of a Goodput limiter by hand: from at,
// it grants k slots (the last ones wait, so the rate binds), reports acc
// accepted and thr throttled answers, and closes the period at at+100ms.
// It returns the rate after the period.
func period(t *testing.T, l *retry.AdaptiveLimiter, at time.Time, k, acc, thr int) float64 {
	t.Helper()
	for range k {
		l.ReserveAt(at, time.Time{}, time.Time{})
	}
	for range acc {
		l.ObserveAt(at.Add(50*time.Millisecond), retry.OutcomeAccepted)
	}
	for range thr {
		l.ObserveAt(at.Add(50*time.Millisecond), retry.OutcomeThrottled)
	}
	l.ReserveAt(at.Add(100*time.Millisecond), time.Time{}, time.Time{}) // closes the period
	r, _ := l.Rate()
	return r
}

// measured returns a limiter pacing at 1000/s with its capacity measured:
// it starts calm at 1000 answers/s, is throttled, and a first period
// measures 1000/s accepted.
func measured(t *testing.T) (*retry.AdaptiveLimiter, time.Time) {
	t.Helper()
	l := mustLimiter(t, retry.LimiterConfig{})
	now := t0
	for i := range 1000 { // 1 s of calm at 1000/s
		l.ObserveAt(now.Add(time.Duration(i)*time.Millisecond), retry.OutcomeAccepted)
	}
	now = now.Add(time.Second)
	l.ObserveAt(now, retry.OutcomeThrottled)
	r, on := l.Rate()
	if !on || math.Abs(r-1000) > 20 {
		t.Fatalf("after 1 s at 1000/s and a throttle: rate %v limiting %v; want ≈1000 from the calm measure", r, on)
	}
	return l, now
}

// calm feeds l a second of perRate accepted answers per second from at,
// as a calm limiter counts them.
func calm(l *retry.AdaptiveLimiter, at time.Time, perRate int) {
	for i := range perRate {
		l.ObserveAt(at.Add(time.Duration(i)*time.Second/time.Duration(perRate)), retry.OutcomeAccepted)
	}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
		t.Errorf("%s: got %.6f, want %.6f", what, got, want)
	}
}

// TestGoodputLawExact pins every term of the law with hand-computed
// numbers: Headroom 0.03, Fairness 0.15 (relative 0.15/√max(n, 25)),
// smoothing over 50 answers, the cut using min(smoothed, this period's
// fraction), the Beta floor 0.5, the probe starting at 2 % and doubling.
func TestGoodputLawExact(t *testing.T) {
	l, now := measured(t)
	rate0, _ := l.Rate()
	// The first throttled period measures: 90 accepted, 10 throttled in
	// 100 ms: 900/s accepted → 900·1.03 + 900·0.15/√100 = 940.5.
	r := period(t, l, now, 100, 90, 10)
	near(t, "first measure", r, 900*1.03+900*0.15/math.Sqrt(90))
	if rate0 == r {
		t.Fatal("the first measure did not move the rate")
	}
	now = now.Add(100 * time.Millisecond)

	// A quiet, binding period with answers: ×(1+2 %) + r·0.15/√max(n,25).
	prev := r
	r = period(t, l, now, int(prev/10)+5, 94, 0)
	fair := func(x float64) float64 { return x * 0.15 / math.Sqrt(math.Max(x*0.1, 25)) }
	want := prev*1.02 + fair(prev)
	near(t, "probe 2 %", r, want)
	now = now.Add(100 * time.Millisecond)

	// The next quiet period doubles the probe step: 4 %.
	prev = r
	r = period(t, l, now, int(prev/10)+5, 95, 0)
	near(t, "probe 4 %", r, prev*1.04+fair(prev))
	now = now.Add(100 * time.Millisecond)

	// A throttled period of 110 answers, 11 throttled (more answers than
	// the rate's 103 per period, so that the cut starts from the rate, not
	// from the traffic): the smoothed fraction moves by 110/160 of the way
	// from its last value (Headroom/(1+Headroom) after the first measure —
	// the fraction expected at the rate it set — then two quiet periods
	// pulled it down).
	frac := 0.03 / 1.03
	frac += 94.0 / 144 * (0 - frac)
	frac += 95.0 / 145 * (0 - frac)
	frac += 110.0 / 160 * (0.1 - frac)
	prev = r
	r = period(t, l, now, int(prev/10)+5, 99, 11)
	keep := 1.03 * (1 - math.Min(frac, 0.1))
	near(t, "cut", r, prev*keep+fair(prev*keep))
	now = now.Add(100 * time.Millisecond)

	// A period of 95 % throttles (110 answers, more than the rate's
	// 100 per period): the cut stops at Beta = 0.5.
	prev = r
	r = period(t, l, now, int(prev/10)+5, 5, 105)
	near(t, "beta floor", r, prev*0.5)
}

// TestGoodputNonThrottleErrorsDoNotMoveTheRate: a burst of failures (5xx,
// resets, outages) is not evidence of capacity either way.
func TestGoodputNonThrottleErrorsDoNotMoveTheRate(t *testing.T) {
	l, now := measured(t)
	r0 := period(t, l, now, 100, 90, 10)
	now = now.Add(100 * time.Millisecond)
	for i := range 20 {
		at := now.Add(time.Duration(i) * 100 * time.Millisecond)
		for range 100 {
			l.ReserveAt(at, time.Time{}, time.Time{})
			l.ObserveAt(at.Add(time.Millisecond), retry.OutcomeFailed)
		}
	}
	l.ReserveAt(now.Add(2*time.Second), time.Time{}, time.Time{})
	if r, on := l.Rate(); r != r0 || !on {
		t.Errorf("after 2 s of failures: rate %v (limiting %v), want unchanged %v", r, on, r0)
	}
}

// TestGoodputStartupLock_FewAcceptedBeforeFirstThrottle is the issue's
// deterministic reproduction of the old trap: fewer than 10 answers accepted
// before the first throttle, then the service has room: the rate must reach
// the capacity. (The old law stayed at 10 × accepted per second forever.)
func TestGoodputStartupLock_FewAcceptedBeforeFirstThrottle(t *testing.T) {
	for _, accepted := range []int{0, 1, 3, 9} {
		l := mustLimiter(t, retry.LimiterConfig{})
		for i := range accepted {
			l.ObserveAt(t0.Add(time.Duration(i)*time.Millisecond), retry.OutcomeAccepted)
		}
		l.ObserveAt(t0.Add(10*time.Millisecond), retry.OutcomeThrottled)
		rate, frac := feed(l, t0.Add(10*time.Millisecond), 5*time.Second, 1000)
		if rate < 950 || frac > 0.1 {
			t.Errorf("%d accepted before the first throttle: after 5 s at capacity 1000/s the rate is %.0f (throttled %.1f%%); want ≥ 950", accepted, rate, 100*frac)
		}
	}
}

func scenario(k, writers int, capacity float64, items int) sim.Scenario {
	s := sim.Scenario{Seed: 1, Capacity: capacity, Burst: 0.1, RTT: 2 * time.Millisecond}
	for range k {
		s.Clients = append(s.Clients, sim.ClientSpec{Writers: writers, Items: items / k})
	}
	return s
}

func runScenario(t *testing.T, s sim.Scenario) sim.ScenarioResult {
	t.Helper()
	r, err := sim.RunScenario(s, sim.Recommended)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGoodputJoinsSaturatedService: a second client starts 4 s into a run
// against a service the first one keeps full. It must get its share (it
// starts with nothing but throttles) and the service stays full.
func TestGoodputJoinsSaturatedService(t *testing.T) {
	s := scenario(2, 100, 1000, 20000)
	s.Clients[1].Start = 4 * time.Second
	r := runScenario(t, s)
	// Issue goal: Jain ≥ 0.95. Measured: 1.017× ideal, Jain 0.887. It was
	// 0.518 while the newcomer took its accepted share of its first wave
	// (a few of its 100 first attempts) as its rate, and the additive term
	// converges slowly from there; it now starts from half the wave's rate.
	if r.WallRatio() > 1.15 || r.AttemptsPerItem() > 1.15 || r.Failures != 0 || !(r.Jain >= 0.8) {
		t.Errorf("join a saturated service: wall÷ideal %.3f attempts/write %.3f failures %d Jain %.3f", r.WallRatio(), r.AttemptsPerItem(), r.Failures, r.Jain)
	}
}

// TestGoodputIndependentClients: 4 and 16 clients, each with its own
// limiter and its own share of the work, converge to a fair share and keep
// the service full.
func TestGoodputIndependentClients(t *testing.T) {
	for _, k := range []int{4, 16} {
		r := runScenario(t, scenario(k, 400/k+5, 1000, 20000))
		// Measured: K=4 1.010× ideal, Jain 0.941; K=16 1.007×, Jain 0.937
		// (goal 0.95).
		if r.WallRatio() > 1.1 || r.AttemptsPerItem() > 1.25 || r.Failures != 0 || !(r.Jain >= 0.88) {
			t.Errorf("K=%d: wall÷ideal %.3f attempts/write %.3f failures %d Jain %.3f", k, r.WallRatio(), r.AttemptsPerItem(), r.Failures, r.Jain)
		}
	}
}

// TestGoodputSteps: capacity ×¼ for 4 s and back (×4). The limiter follows
// down within 0.5 s and back up within 1 s (to 90 % of the capacity).
// Measured: down 300 ms, up 900 ms, 1.018× ideal, 1.07 attempts/write.
func TestGoodputSteps(t *testing.T) {
	s := scenario(1, 400, 2000, 40000)
	s.Steps = []sim.Step{{At: 5 * time.Second, Factor: 0.25}, {At: 9 * time.Second, Factor: 1}}
	r := runScenario(t, s)
	if r.RecoverDown < 0 || r.RecoverDown > 500*time.Millisecond {
		t.Errorf("×¼: the send rate came within 10%% of the new capacity after %v, want ≤ 500ms", r.RecoverDown)
	}
	if r.RecoverUp < 0 || r.RecoverUp > time.Second {
		t.Errorf("×4: the accepted rate reached 90%% of the capacity after %v, want ≤ 1s", r.RecoverUp)
	}
	if r.WallRatio() > 1.06 || r.AttemptsPerItem() > 1.2 {
		t.Errorf("steps: wall÷ideal %.3f attempts/write %.3f", r.WallRatio(), r.AttemptsPerItem())
	}
}

// TestGoodputVeryLowCapacity: 5/s dropping to 1/s (the old law throttled
// 76 % of attempts there, deciding every 100 ms on 0–1 answers).
func TestGoodputVeryLowCapacity(t *testing.T) {
	s := scenario(1, 20, 5, 150)
	s.Steps = []sim.Step{{At: 10 * time.Second, Factor: 0.2}}
	r := runScenario(t, s)
	// Measured: 55 % throttled, 1.38× ideal — better than the old law's
	// 76 % but far from the goal: this guards the current level.
	if thr := float64(r.Throttled) / float64(r.Attempts); thr > 0.6 || r.Failures != 0 || r.WallRatio() > 1.7 {
		t.Errorf("5/s → 1/s: throttled %.0f%% of attempts, wall÷ideal %.3f, failures %d", 100*thr, r.WallRatio(), r.Failures)
	}
}

// TestGoodputSqueezedClientRegains: six clients of two writers share 34
// writes/s; the first starts alone against background load, the others
// join 2–4 s later and squeeze it to a trickle (0.05–0.2/s). Each of its
// rare answers moves its rate one step, so once the others had finished it
// took ~40 s to climb back, sending one write every 5–20 s (3.72× ideal; the
// matrix's worst case, seed 425). A trickle that hears nothing for
// silentFor now regains with time: measured 1.965× ideal.
func TestGoodputSqueezedClientRegains(t *testing.T) {
	s := sim.RandomScenario(425)
	r := runScenario(t, s)
	if r.WallRatio() > 2.2 || r.Failures != 0 {
		t.Errorf("squeezed client: wall÷ideal %.3f (want ≤ 2.2; the old law took 3.72), failures %d", r.WallRatio(), r.Failures)
	}
}

// TestGoodputGoesCalmWhenThrottlingStops: after 5 s at 1000/s the service
// stops throttling; the limiter must stop pacing (the old one kept pacing:
// 16.2 s where no limiter takes 7.3 s).
func TestGoodputGoesCalmWhenThrottlingStops(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	l.ObserveAt(t0, retry.OutcomeThrottled)
	feed(l, t0, 5*time.Second, 1000)
	feed(l, t0.Add(5*time.Second), 5*time.Second, 1e9) // unlimited
	if r, on := l.Rate(); on {
		t.Errorf("5 s after throttling stopped the limiter still paces at %.0f/s", r)
	}
}

// TestGoodputCancelledWaitersLeaveNoGap: 1000 waiters give up their places;
// a newcomer must not wait for their slots (the old CancelAt was a no-op:
// 4.985 s at an empty line).
func TestGoodputCancelledWaitersLeaveNoGap(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{MinRate: 200})
	l.ObserveAt(t0, retry.OutcomeThrottled) // pacing at 200/s
	var tickets []retry.Ticket
	for range 1000 {
		tk, _, _ := l.ReserveAt(t0, time.Time{}, time.Time{})
		tickets = append(tickets, tk)
	}
	for _, tk := range tickets {
		l.CancelAt(t0, tk)
	}
	_, w, _ := l.ReserveAt(t0.Add(time.Millisecond), time.Time{}, time.Time{})
	if w > 10*time.Millisecond {
		t.Errorf("after 1000 cancellations a newcomer waits %v at 200/s, want ≤ 10ms", w)
	}
}

// TestAdaptiveLimiterZeroValue: the zero value is ready (the default
// configuration) and never hangs.
func TestAdaptiveLimiterZeroValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l retry.AdaptiveLimiter
		p := &retry.Policy{Limiter: &l, MaxAttempts: 5, Backoff: retry.Constant{Interval: time.Millisecond}}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		n := 0
		err := p.Do(t.Context(), func(context.Context) error {
			n++
			if n < 3 {
				return retry.Throttle(errTransient)
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Errorf("zero-value limiter: %v after %d attempts", err, n)
		}
		if c := l.Config(); c.Interval != 100*time.Millisecond || c.Fairness != 0.15 {
			t.Errorf("zero value's config %+v, want the defaults", c)
		}
	})
}

func TestLimiterConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   retry.LimiterConfig
		field string
	}{
		{retry.LimiterConfig{Interval: 10 * time.Nanosecond}, "Interval"},
		{retry.LimiterConfig{Interval: time.Hour}, "Interval"},
		{retry.LimiterConfig{Beta: 1}, "Beta"},
		{retry.LimiterConfig{Headroom: math.NaN()}, "Headroom"},
		{retry.LimiterConfig{Fairness: -1}, "Fairness"},
		{retry.LimiterConfig{CalmAfter: -1}, "CalmAfter"},
		{retry.LimiterConfig{Window: time.Nanosecond}, "Window"},
		{retry.LimiterConfig{Algorithm: 7}, "Algorithm"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.field)
		}
		if _, err := retry.NewAdaptiveLimiter(c.cfg); err == nil {
			t.Errorf("NewAdaptiveLimiter(%+v) accepted it", c.cfg)
		}
	}
	if err := (&retry.Policy{Limiter: (*retry.AdaptiveLimiter)(nil)}).Validate(); err != nil {
		t.Errorf("a nil *AdaptiveLimiter (never limits): %v", err)
	}
}

// TestLimiterSetEvictsIdleKeys: keys unused for DefaultLimiterIdle go.
func TestLimiterSetEvictsIdleKeys(t *testing.T) {
	s, _ := retry.NewLimiterSet(retry.LimiterConfig{})
	for i := range 100 {
		s.GetAt(t0, "key"+strings.Repeat("x", i))
	}
	if s.Len() != 100 {
		t.Fatalf("Len %d, want 100", s.Len())
	}
	later := t0.Add(retry.DefaultLimiterIdle + time.Second)
	for range 1024 {
		s.GetAt(later, "hot")
	}
	if s.Len() != 1 {
		t.Errorf("after the idle time, Len %d, want 1 (only the key in use)", s.Len())
	}
}

// TestGoodputCutNeverExceedsThisPeriodsFraction: a smoothed fraction left
// high by a storm must not deepen the cut of a period that saw few
// throttles: the cut uses min(smoothed, this period's).
func TestGoodputCutNeverExceedsThisPeriodsFraction(t *testing.T) {
	l, now := measured(t)
	r := period(t, l, now, 100, 90, 10)
	now = now.Add(100 * time.Millisecond)
	r = period(t, l, now, int(r/10)+5, 5, 95) // a storm: the smoothed fraction rises
	now = now.Add(100 * time.Millisecond)
	prev := r
	r = period(t, l, now, int(prev/10)+5, 98, 2) // 2 % throttled
	keep := 1.03 * (1 - 0.02)
	fair := prev * keep * 0.15 / math.Sqrt(math.Max(prev*keep*0.1, 25))
	near(t, "cut after a storm", r, prev*keep+fair)
}

// TestGoodputSlowStart: until a throttled period has accepted something,
// a period of throttles only halves what was sent, a period with accepted
// answers doubles the rate, and a period without answers grows blind but
// never past the rate last refused outright.
func TestGoodputSlowStart(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	now := t0
	l.ObserveAt(now, retry.OutcomeThrottled) // limiting; nothing accepted yet
	// 99 more throttles in the first 100 ms: 100 answers = 1000/s sent, all
	// refused: the rate becomes Beta × 1000/s = 500/s.
	r := period(t, l, now, 0, 0, 99)
	near(t, "all refused", r, 500)
	now = now.Add(100 * time.Millisecond)
	// A period without answers, the line binding: blind growth, capped at
	// the rate refused outright (500/s): no change.
	r = period(t, l, now, 60, 0, 0)
	near(t, "blind growth capped", r, 500)
	now = now.Add(100 * time.Millisecond)
	// Accepted answers and no throttle: double.
	r = period(t, l, now, 60, 40, 0)
	near(t, "slow start doubles", r, 1000)
	now = now.Add(100 * time.Millisecond)
	r = period(t, l, now, 110, 90, 0)
	near(t, "and again", r, 2000)
}

// TestGoodputLowRateBoost: below 10 answers per Interval an accepted,
// throttle-free period is rare evidence and grows the rate by at least
// Probe·10/(answers per Interval): at 20/s (2 per Interval), 10 %.
func TestGoodputLowRateBoost(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0, 20) // a second at 20 answers/s: the pace is a real one
	start := t0.Add(time.Second)
	l.ObserveAt(start, retry.OutcomeThrottled)
	r := period(t, l, start, 0, 2, 1) // first measure: 20/s accepted
	want := 20*1.03 + 20*0.15/math.Sqrt(25)
	near(t, "first measure", r, want)
	now := start.Add(100 * time.Millisecond)
	prev := r
	r = period(t, l, now, 3, 2, 0)
	g := 0.02 * 10 / (prev * 0.1)
	near(t, "low-rate growth", r, prev*(1+g)+prev*0.15/math.Sqrt(25))
}

// TestGoodputCutsFromTheTrafficNotAnIdleRate: when the writers, not the
// rate, bound the sends (a rate that grew far above them, or few callers),
// a throttled period cuts from what was actually sent: a cut of the idle
// rate would leave the sends, and the throttles, unchanged for periods.
func TestGoodputCutsFromTheTrafficNotAnIdleRate(t *testing.T) {
	l, now := measured(t)
	r := period(t, l, now, 100, 90, 10) // measured: ≈ 940/s
	now = now.Add(100 * time.Millisecond)
	// 20 sends in 100 ms (200/s, far below the rate), half throttled.
	frac := 0.03 / 1.03
	frac += 20.0 / 70 * (0.5 - frac)
	keep := 1.03 * (1 - math.Min(frac, 0.5))
	traffic := 200.0
	want := math.Max(traffic*keep+traffic*keep*0.15/math.Sqrt(math.Max(traffic*keep*0.1, 25)), 0.5*traffic)
	got := period(t, l, now, 20, 10, 10)
	near(t, "cut from 200/s sent", got, want)
	if got > r/2 {
		t.Errorf("rate %.1f after half of 200/s was throttled, from %.1f: the cut ignored the traffic", got, r)
	}
}

// TestGoodputTrickleRegainsWithTime pins the trickle rule: a limiter cut
// below one send per Interval that hears nothing for silentFor (1 s)
// regains ×(1 + Probe·10) per period, up to one send per Interval, while
// periods within that second leave it alone.
func TestGoodputTrickleRegainsWithTime(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0, 20) // a second at 20 answers/s: the pace is a real one
	now := t0.Add(time.Second)
	l.ObserveAt(now, retry.OutcomeThrottled)
	period(t, l, now, 0, 1, 1) // first measure: 10/s accepted
	for range 3 {              // throttles only: cut towards a trickle
		now = now.Add(100 * time.Millisecond)
		period(t, l, now, 0, 0, 1)
	}
	lastAnswer := now.Add(50 * time.Millisecond)
	r, _ := l.Rate()
	if r*0.1 >= 1 {
		t.Fatalf("rate %.3f/s after the cuts: not a trickle (want under 10/s)", r)
	}
	for range 40 {
		now = now.Add(100 * time.Millisecond)
		prev := r
		r = period(t, l, now, 0, 0, 0)
		end := now.Add(100 * time.Millisecond)
		switch {
		case end.Sub(lastAnswer) < time.Second:
			near(t, "silent for under 1 s", r, prev)
		default:
			near(t, "regain with time", r, math.Min(prev*1.1, 10))
		}
	}
	if r != 10 {
		t.Errorf("after 4 s of silence the rate is %.3f/s, want one send per Interval (10/s)", r)
	}
}

// TestLimiterSetAll yields every key held, once, with its limiter.
func TestLimiterSetAll(t *testing.T) {
	s, err := retry.NewLimiterSet(retry.LimiterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*retry.AdaptiveLimiter{"a": s.Get("a"), "b": s.Get("b"), "c": s.Get("c")}
	got := map[string]*retry.AdaptiveLimiter{}
	for k, l := range s.All() {
		if _, dup := got[k]; dup {
			t.Errorf("key %q yielded twice", k)
		}
		got[k] = l
	}
	if len(got) != 3 || got["a"] != want["a"] || got["b"] != want["b"] || got["c"] != want["c"] {
		t.Errorf("All yielded %v, want %v", got, want)
	}
	for range s.All() {
		break // stopping early is allowed
	}
}

// TestGoodputFirstWaveIsNoMeasure: when the first throttle is seen before
// the calm start's accepted answers (a burst of calls at once), the pace
// starts near zero; the answers of the next period come from that burst,
// not from the pace (100 answers where the pace carries none): the rate
// starts from half the wave's rate, and slow start goes on (it doubles)
// instead of settling at the 190/s accepted of the burst and probing up by
// Probe, doubling (1 %, 2 %, … with the Probe of the time: 0.9 s to regain
// 1000/s over real gRPC).
func TestGoodputFirstWaveIsNoMeasure(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	l.ObserveAt(t0, retry.OutcomeThrottled) // before any accepted answer: pace at the floor
	r := period(t, l, t0, 0, 19, 80)        // the burst's answers: 19 accepted
	near(t, "half the wave's 1000/s", r, 500)
	now := t0.Add(100 * time.Millisecond)
	prev := r
	r = period(t, l, now, int(prev/10)+5, 20, 0) // paced, all accepted
	near(t, "slow start doubles", r, 2*prev)
}

// TestGoodputFirstWaveIsTheSameForEqualClients: two processes of 25
// writers start together; the service accepts 20 of one's first wave and 1
// of the other's (which sends came first). Both must leave the wave at the
// same rate: each one's accepted share of it (200/s against 10/s) used to be
// its starting rate, and the law keeps ratios for seconds — over real HTTP,
// eight processes finished at 0.24–1.2 of the ideal time.
func TestGoodputFirstWaveIsTheSameForEqualClients(t *testing.T) {
	rates := make([]float64, 2)
	for i, acc := range []int{20, 1} {
		l := mustLimiter(t, retry.LimiterConfig{})
		calm(l, t0.Add(-time.Second), 100) // a second at 100 answers/s before the wave
		l.ObserveAt(t0, retry.OutcomeThrottled)
		rates[i] = period(t, l, t0, 0, acc, 25-acc) // 26 answers: the wave
	}
	if rates[0] != rates[1] {
		t.Errorf("after the same wave of 26 answers, 20 and 1 accepted: rates %.1f and %.1f, want equal", rates[0], rates[1])
	}
	near(t, "half the wave's 260/s", rates[0], 130)
}

// TestGoodputOnlyTheFirstPeriodIsAWave: the wave rule reads the period in
// which limiting began, and only it. A first period of throttles only
// (halved, refused), then a period of many answers, some accepted, is a
// measure: the rate is set from what was accepted. After a wave that had
// accepted answers, slow start may grow blind (nothing was refused
// outright); after one with none, not past the refused rate.
func TestGoodputOnlyTheFirstPeriodIsAWave(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0.Add(-time.Second), 100)
	l.ObserveAt(t0, retry.OutcomeThrottled)
	r0, _ := l.Rate()              // the calm measure, about 100/s
	r := period(t, l, t0, 0, 0, 3) // 4 throttles: not a wave (pace 10/period), refused
	near(t, "all refused: half the rate", r, r0/2)
	now := t0.Add(100 * time.Millisecond)
	r = period(t, l, now, 0, 30, 30) // 60 answers, 30 accepted: a measure
	near(t, "measured from what was accepted", r, 300*1.03+300*0.15/math.Sqrt(30))

	for _, acc := range []int{5, 0} {
		l := mustLimiter(t, retry.LimiterConfig{})
		calm(l, t0.Add(-time.Second), 100)
		l.ObserveAt(t0, retry.OutcomeThrottled)
		r := period(t, l, t0, 0, acc, 25-acc) // a wave of 26 answers
		near(t, "half the wave", r, 130)
		r = period(t, l, t0.Add(100*time.Millisecond), 20, 0, 0) // no answers, binding
		want := 130.0                                            // capped at the refused rate
		if acc > 0 {
			want = 260 // blind slow start
		}
		near(t, fmt.Sprintf("blind growth after a wave with %d accepted", acc), r, want)
	}
}

// TestGoodputSlowPaceIsNoMeasure: a first throttled period too small to be
// a wave, at a pace that could not carry one send in it (5/s: half a send
// per period), answered by sends made before — 2 accepted — sets the rate
// from them but measures nothing: slow start goes on (doubles) instead of
// probing by Probe, doubling (2 %, 4 %, …).
func TestGoodputSlowPaceIsNoMeasure(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0.Add(-time.Second), 5)
	l.ObserveAt(t0, retry.OutcomeThrottled)
	r := period(t, l, t0, 0, 2, 0) // 3 answers: no wave; 20/s accepted
	near(t, "set from what was accepted", r, 20*1.03+20*0.15/math.Sqrt(25))
	prev := r
	r = period(t, l, t0.Add(100*time.Millisecond), 5, 3, 0) // paced, all accepted
	near(t, "slow start doubles", r, 2*prev)
}

// TestGoodputOneAnswerPeriodsHaveNoFloor: a client whose periods hold one
// answer each, every one a throttle (a one-writer process among many on a
// small service), halves what it sends each period until it is told
// otherwise. It used to halve max(rate, answers/Interval) — one answer in
// 100 ms counted as 10/s — and so sat at 5/s forever: thirteen such
// clients on a 9/s service were 80 % throttled, as without a limiter.
func TestGoodputOneAnswerPeriodsHaveNoFloor(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0.Add(-time.Second), 20)
	l.ObserveAt(t0, retry.OutcomeThrottled)
	r := period(t, l, t0, 0, 0, 1) // the first period: 2 throttles, no wave
	near(t, "first period, all refused", r, 10)
	now := t0
	for i := range 8 {
		now = now.Add(100 * time.Millisecond)
		prev := r
		r = period(t, l, now, 1, 0, 1)
		near(t, fmt.Sprintf("one throttle in period %d", i+2), r, math.Max(prev/2, 0.05)) // MinRate
	}
	if r >= 1 {
		t.Errorf("after 8 periods of one throttle each the rate is %.3f/s; want it below 1/s", r)
	}
}

// TestGoodputMeasuresAcrossSparsePeriods: a client that never gets an
// accepted answer and a throttle in the same period (one answer per
// period) is measured over the periods since limiting began: the first
// throttle after an accepted answer sets the rate from the accepted rate
// over that span, and the law then probes instead of doubling.
func TestGoodputMeasuresAcrossSparsePeriods(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0.Add(-time.Second), 20)
	l.ObserveAt(t0, retry.OutcomeThrottled)
	r := period(t, l, t0, 0, 0, 1)
	near(t, "first period, all refused", r, 10)
	now := t0.Add(100 * time.Millisecond)
	r = period(t, l, now, 1, 1, 0)
	near(t, "unmeasured, accepted: slow start doubles", r, 20)
	now = now.Add(100 * time.Millisecond)
	r = period(t, l, now, 1, 0, 1) // 1 accepted over the last 200 ms: 5/s
	near(t, "measured across two periods", r, 5*1.03+5*0.15/5)
	now = now.Add(100 * time.Millisecond)
	prev := r
	r = period(t, l, now, 1, 1, 0)
	g := 0.02 * 10 / (prev * 0.1) // the low-rate probe, not slow start
	near(t, "then probes", r, prev*(1+g)+prev*0.15/5)
	// The measure reset the smoothed throttled fraction to
	// Headroom/(1+Headroom), as the first measure does: a throttled period
	// now cuts by it (smoothed with this period's one answer), not by the
	// start-up's.
	now = now.Add(100 * time.Millisecond)
	prev = r
	frac := 0.03 / 1.03 * 50 / 51 // after the accepted period
	frac += (1 - frac) / 51       // and this throttle
	keep := prev * 1.03 * (1 - frac)
	r = period(t, l, now, 1, 0, 1)
	near(t, "a throttle after the measure", r, keep+keep*0.15/5)
}

// TestGoodputUnmeasuredTrickleRegains: a client refused outright until it
// is a trickle, never measured, that then hears nothing for a second
// regains with time as a measured one does; blind growth alone is capped
// at the rate last refused, which would hold it there for good.
func TestGoodputUnmeasuredTrickleRegains(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0.Add(-time.Second), 20)
	l.ObserveAt(t0, retry.OutcomeThrottled)
	period(t, l, t0, 0, 0, 1)
	now := t0
	for range 6 { // 10/s halved six times: 0.156/s
		now = now.Add(100 * time.Millisecond)
		period(t, l, now, 1, 0, 1)
	}
	low, _ := l.Rate()
	for range 30 {
		now = now.Add(100 * time.Millisecond)
		period(t, l, now, 0, 0, 0)
	}
	if r, _ := l.Rate(); r < 5*low {
		t.Errorf("3 s of silence after being refused down to %.3f/s: rate %.3f/s; want it regained (≥ %.3f/s)", low, r, 5*low)
	}
}

// TestGoodputSparseMeasureSkipsIdlePeriods: periods in which the client
// sent nothing and heard nothing (no work) are not part of the span its
// accepted rate is measured over.
func TestGoodputSparseMeasureSkipsIdlePeriods(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	calm(l, t0.Add(-time.Second), 20)
	l.ObserveAt(t0, retry.OutcomeThrottled)
	period(t, l, t0, 0, 0, 1)
	now := t0.Add(100 * time.Millisecond)
	period(t, l, now, 1, 1, 0)
	for range 5 { // idle: no sends, no answers
		now = now.Add(100 * time.Millisecond)
		period(t, l, now, 0, 0, 0)
	}
	now = now.Add(100 * time.Millisecond)
	r := period(t, l, now, 1, 0, 1) // 1 accepted over 200 ms of work: 5/s
	near(t, "measured over the periods with work", r, 5*1.03+5*0.15/5)
}
