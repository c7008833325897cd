package redisretry_test

import (
	"context"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jittered/retry"
	"github.com/jittered/retry/redisretry"
	"github.com/redis/go-redis/v9"
)

// The fleet's law, pinned at the script: each test writes a limiter state
// into a real Redis (times relative to the server's clock), runs one step
// of step.lua with the defaults' arguments, and reads the state back.

const (
	lawP     = 200_000 // µs: the default Interval
	lawH     = 0.03
	lawProbe = 0.01
)

type lawRig struct {
	t      *testing.T
	rdb    *redis.Client
	script *redis.Script
	key    string
}

func newLawRig(t *testing.T) *lawRig {
	t.Helper()
	src, err := os.ReadFile("step.lua")
	if err != nil {
		t.Fatal(err)
	}
	s := startRedis(t)
	return &lawRig{t: t, rdb: client(t, s), script: redis.NewScript(string(src)), key: "law:" + t.Name()}
}

// now is the server's clock in µs.
func (r *lawRig) now() int64 {
	tm, err := r.rdb.Time(context.Background()).Result()
	if err != nil {
		r.t.Fatal(err)
	}
	return tm.UnixMicro()
}

// set writes a limiting state: the fields given, over a state that limits
// at rate with its open period ending at end (µs, server clock).
func (r *lawRig) set(rate float64, end int64, fields map[string]float64) {
	r.t.Helper()
	now := r.now()
	st := map[string]any{"rate": rate, "ps": end - lawP, "tat": now, "lthr": now, "lans": now, "cps": now}
	for k, v := range fields {
		st[k] = v
	}
	ctx := context.Background()
	r.rdb.Del(ctx, r.key)
	if err := r.rdb.HSet(ctx, r.key, st).Err(); err != nil {
		r.t.Fatal(err)
	}
}

// step reports acc/thr before bound and acc2/thr2 after it (no lease).
func (r *lawRig) step(acc, thr, acc2, thr2 int, bound int64) []any {
	r.t.Helper()
	return r.lease(acc, thr, acc2, thr2, bound, 0, 0)
}

// lease is step with a lease of want slots by a process that has gone
// starved µs without a slot.
func (r *lawRig) lease(acc, thr, acc2, thr2 int, bound int64, want int, starved int64) []any {
	r.t.Helper()
	res, err := r.script.Run(context.Background(), r.rdb, []string{r.key},
		acc, thr, acc2, thr2, bound, 0, want, starved, lawP, 2_000_000, lawH, lawProbe, 0.5, 50_000, 60_000, 50_000).Slice()
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *lawRig) get(f string) float64 {
	r.t.Helper()
	v, err := r.rdb.HGet(context.Background(), r.key, f).Result()
	if err != nil {
		r.t.Fatalf("field %s: %v", f, err)
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		r.t.Fatalf("field %s = %q: %v", f, v, err)
	}
	return x
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

// TestLawCountsAnswersInTheirPeriod: a report's answers go to the period
// they came in, as the process split them at the period's end, not to the
// period the report reached; one counted at an end the process had not
// heard of yet is split by time.
func TestLawCountsAnswersInTheirPeriod(t *testing.T) {
	r := newLawRig(t)
	end := r.now() + 100_000
	r.set(1000, end, nil)
	r.step(150, 10, 7, 1, end)
	if a, th, na, nt := r.get("acc"), r.get("thr"), r.get("nacc"), r.get("nthr"); a != 150 || th != 10 || na != 7 || nt != 1 {
		t.Errorf("split at the open period's end: acc %v thr %v, next %v/%v; want 150/10 and 7/1", a, th, na, nt)
	}
	// A report whose end is older: before the open period ends, all of it
	// is the open period's.
	r.step(3, 0, 4, 0, end-lawP)
	if a, na := r.get("acc"), r.get("nacc"); a != 157 || na != 7 {
		t.Errorf("a report on an older end: acc %v next %v; want 157 and 7", a, na)
	}

	// After the open period ended (not yet closed), a process that knew only
	// the previous end: its answers after that end are split by time at
	// the open one's end (the report comes 10 ms after it: of the 210 ms
	// since the open period began, 200 are before).
	now := r.now()
	end = now - 10_000
	r.set(1000, end, nil)
	r.step(0, 0, 100, 0, end-lawP)
	a, na := r.get("acc"), r.get("nacc")
	if !near(a+na, 100) || a < 92 || a > 95.5 {
		t.Errorf("split by time: acc %v next %v; want about 95 and 5", a, na)
	}
}

// TestLawClosesAQuarterPeriodLate: a period closes a quarter period after
// its end, not at it (reports of its answers are still on their way), and
// its decision uses its own count, the next period keeping what came after.
func TestLawClosesAQuarterPeriodLate(t *testing.T) {
	r := newLawRig(t)
	end := r.now() - 20_000 // ended 20 ms ago: not closed yet
	r.set(1000, end, map[string]float64{"meas": 1, "acc": 190, "thr": 20, "nacc": 9})
	r.step(0, 0, 0, 0, end)
	if got := r.get("rate"); got != 1000 {
		t.Fatalf("20 ms after the end: rate %v; want 1000 (period still open)", got)
	}
	r.set(1000, r.now()-60_000, map[string]float64{"meas": 1, "acc": 190, "thr": 20, "nacc": 9})
	r.step(0, 0, 0, 0, 0)
	// 190 accepted in 200 ms, the fleet used its rate, no earlier measure:
	// 950/s · (1 + H).
	if got, want := r.get("rate"), 950*(1+lawH); !near(got, want) {
		t.Errorf("closed with 190 accepted of 210: rate %v; want %v", got, want)
	}
	if got := r.get("peak"); !near(got, 950) {
		t.Errorf("peak %v; want 950 (the accepted rate of a period that used the rate)", got)
	}
	if got := r.get("acc"); got != 9 {
		t.Errorf("the next period starts with %v accepted; want the 9 counted after the end", got)
	}
}

// TestLawUnderusedPeriodCutsByRefusedShare: a throttle in a period in
// which the fleet did not carry its rate (less than 95 % of it answered)
// cuts by the share refused, not to the short count, and leaves the peak
// alone.
func TestLawUnderusedPeriodCutsByRefusedShare(t *testing.T) {
	r := newLawRig(t)
	r.set(1000, r.now()-60_000, map[string]float64{"meas": 1, "peak": 1000, "acc": 100, "thr": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1000*(1-1.0/101); !near(got, want) {
		t.Errorf("101 answers of 200 allowed, one throttle: rate %v; want %v (not 515, the short count's)", got, want)
	}
	if got := r.get("peak"); got != 1000 {
		t.Errorf("peak %v; want 1000 kept", got)
	}
	// 185 answers of 200 allowed (92.5 %): no measure either (a hole, or
	// a count's noise, not the service's capacity).
	r.set(1000, r.now()-60_000, map[string]float64{"meas": 1, "peak": 1000, "acc": 184, "thr": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1000*(1-1.0/185); !near(got, want) {
		t.Errorf("185 answers of 200 allowed, one throttle: rate %v; want %v (not 947.6, the count's)", got, want)
	}
	if got := r.get("peak"); got != 1000 {
		t.Errorf("peak %v after 185 answers; want 1000 kept", got)
	}
}

// TestLawGrowthNearPeakIsCapped: without throttles, after two periods
// that carried the rate, the probe creeps (Probe a period) within 10 % of
// the last measured peak — for five quiet periods, and after them until
// the service has accepted a tenth of a period beyond the measure since
// the last throttle (qsum) — grows at most 5 % a period below 1.5× it, and
// far above it grows exponentially again from Probe, counted from the
// crossing; below 99 % of the peak it closes half the gap.
func TestLawGrowthNearPeakIsCapped(t *testing.T) {
	r := newLawRig(t)
	ended := func() int64 { return r.now() - 60_000 }
	// 5 quiet periods near the peak: the probe would be 16 %; it creeps.
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 4, "acc": 200, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1000*(1+lawProbe); !near(got, want) {
		t.Errorf("within 10 %% of the peak: rate %v; want %v (Probe)", got, want)
	}
	// A second of creeping without a throttle, and the service accepted
	// nothing beyond the measure (its bucket's credit from holes, no
	// evidence of more capacity): creep on.
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 5, "acc": 200, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1000*(1+lawProbe); !near(got, want) {
		t.Errorf("near the peak, sixth quiet period, nothing accepted beyond the measure: rate %v; want %v (Probe)", got, want)
	}
	// The service accepted 15 + 10 answers beyond the measure since the
	// last throttle (a tenth of a period's 200 is 20): the measure is low;
	// grow again (capped at 5 %).
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 5, "acc": 210, "wait": 1, "pfull": 1, "qsum": 15})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1050.0; !near(got, want) {
		t.Errorf("near the peak, sixth quiet period, 25 accepted beyond the measure: rate %v; want %v", got, want)
	}
	// Between 1.1 and 1.5× the peak: capped at 5 %.
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 800, "quiet": 4, "acc": 200, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1050.0; !near(got, want) {
		t.Errorf("at 1.25× the peak: rate %v; want %v", got, want)
	}
	// Just past 1.5× the peak after many quiet periods: Probe again, not a
	// doubling (the ramp restarts at the crossing)…
	r.set(1500, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 12, "acc": 300, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1500*(1+lawProbe); !near(got, want) {
		t.Errorf("crossing 1.5× the peak: rate %v; want %v", got, want)
	}
	// …and doubling its step with each quiet period above it.
	r.set(2000, ended(), map[string]float64{"meas": 1, "peak": 900, "quiet": 9, "qa": 4, "acc": 400, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 2000*(1+lawProbe*16); !near(got, want) {
		t.Errorf("far above the peak, fifth quiet period there: rate %v; want %v", got, want)
	}
	// Within 1 % of the peak: probe (not halve a gap that never closes).
	r.set(995, ended(), map[string]float64{"meas": 1, "peak": 1000, "acc": 199, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 995*(1+lawProbe); !near(got, want) {
		t.Errorf("at 99.5 %% of the peak: rate %v; want %v (a probe)", got, want)
	}
	r.set(800, ended(), map[string]float64{"meas": 1, "peak": 1000, "acc": 160, "wait": 1})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 900.0; !near(got, want) {
		t.Errorf("at 80 %% of the peak: rate %v; want %v (half the gap)", got, want)
	}
}

// TestLawNoGrowthAfterAHole: a quiet period grows the rate only if it and
// the one before it carried the rate (≥ 90 % of it answered): after a
// period the fleet did not fill, the service's bucket refilled, and its
// credit is no evidence of capacity.
func TestLawNoGrowthAfterAHole(t *testing.T) {
	r := newLawRig(t)
	ended := func() int64 { return r.now() - 60_000 }
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 3, "acc": 200, "wait": 1, "pfull": 0})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("rate"); got != 1000 {
		t.Errorf("quiet, full, after a hole: rate %v; want 1000", got)
	}
	if q, pf := r.get("quiet"), r.get("pfull"); q != 3 || pf != 1 {
		t.Errorf("quiet %v, pfull %v; want the quiet count kept (3) and this period full (1)", q, pf)
	}
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 3, "acc": 150, "wait": 1, "pfull": 1})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("rate"); got != 1000 {
		t.Errorf("quiet, a hole (150 of 200): rate %v; want 1000", got)
	}
	if pf := r.get("pfull"); pf != 0 {
		t.Errorf("pfull %v after a hole; want 0", pf)
	}
}

// TestLawMeasuresOverTwoPeriods: a throttled period that carried the
// rate (95 % of it answered), after another such, measures the mean of
// the two counts (a late process's report moves answers from one to the
// next); a count more than 30 % from the one before is taken at once, and
// a period after none such (the first wave, or a stale measure) is its own
// count. The peak is never above what the fleet sent at this period's
// rate or the one before.
func TestLawMeasuresOverTwoPeriods(t *testing.T) {
	r := newLawRig(t)
	ended := func() int64 { return r.now() - 60_000 }
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "pmeas": 1, "pacc": 165, "acc": 185, "thr": 10})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 875*(1+lawH); !near(got, want) {
		t.Errorf("185 accepted after 165: rate %v; want %v (the mean, 875, · (1 + H))", got, want)
	}
	if got := r.get("peak"); !near(got, 875) {
		t.Errorf("peak %v; want 875", got)
	}
	if got, pa := r.get("pmeas"), r.get("pacc"); got != 1 || pa != 185 {
		t.Errorf("pmeas %v, pacc %v; want 1 and 185 (this period measured)", got, pa)
	}
	// Alone (the period before measured nothing): its own count, not an
	// average with an older measure.
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "pmeas": 0, "pacc": 165, "acc": 185, "thr": 10})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 925*(1+lawH); !near(got, want) {
		t.Errorf("185 accepted alone: rate %v; want %v", got, want)
	}
	// The first wave's count is no measure to average with: the count.
	r.set(1300, ended(), map[string]float64{"meas": 1, "peak": 1400, "pmeas": 0, "acc": 200, "thr": 60})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1000*(1+lawH); !near(got, want) {
		t.Errorf("1000/s accepted at 1300 after a wave of 1400: rate %v; want %v", got, want)
	}
	// A drop to a quarter: the count, not a mean (Beta bounds the cut).
	r.set(1000, ended(), map[string]float64{"meas": 1, "peak": 1000, "pmeas": 1, "pacc": 200, "acc": 50, "thr": 150})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("rate"); got != 500 {
		t.Errorf("250/s accepted after 1000: rate %v; want 500 (Beta of 1000)", got)
	}
	if got := r.get("peak"); !near(got, 250) {
		t.Errorf("peak %v; want 250", got)
	}
	// More accepted than sent (the service's burst, or a count's noise):
	// the peak is what was sent…
	r.set(900, ended(), map[string]float64{"meas": 1, "acc": 200, "thr": 3})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("peak"); got != 900 {
		t.Errorf("1000/s accepted at a rate of 900: peak %v; want 900", got)
	}
	// …at the rate of the period before, if higher: answers come after
	// their sends, and the period after a cut is answered for the sends
	// before it.
	r.set(900, ended(), map[string]float64{"meas": 1, "acc": 200, "thr": 3, "prate": 1200})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("peak"); got != 1000 {
		t.Errorf("1000/s accepted at 900 just after 1200: peak %v; want 1000", got)
	}
}

// TestLawFirstThrottleAfterGrowthCutsToTheMeasure: the first throttled
// period after quiet growth cuts to the last measure · (1 + H), not to
// its own count, which holds the burst the growth was spending; the
// measure stays until a throttled period that did not follow growth.
func TestLawFirstThrottleAfterGrowthCutsToTheMeasure(t *testing.T) {
	r := newLawRig(t)
	r.set(1150, r.now()-60_000, map[string]float64{"meas": 1, "peak": 1000, "quiet": 3, "acc": 230, "thr": 10})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1000*(1+lawH); !near(got, want) {
		t.Errorf("rate %v; want %v", got, want)
	}
	if got := r.get("peak"); got != 1000 {
		t.Errorf("peak %v; want 1000 kept", got)
	}
	if q := r.get("quiet"); q != 0 {
		t.Errorf("quiet %v; want 0", q)
	}
	if c := r.get("capcut"); c != 1150 {
		t.Errorf("capcut %v; want 1150 (the rate cut from, for the next period's measure)", c)
	}
	// The next period measures again: its measure replaces the old one,
	// up to the rate cut from…
	r.set(1030, r.now()-60_000, map[string]float64{"meas": 1, "peak": 1000, "capcut": 1150, "prate": 1150, "acc": 205, "thr": 20})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 1025*(1+lawH); !near(got, want) {
		t.Errorf("remeasured at 1025/s after a cut to the old measure: rate %v; want %v", got, want)
	}
	if got := r.get("peak"); !near(got, 1025) {
		t.Errorf("peak %v; want 1025", got)
	}
	r.set(1030, r.now()-60_000, map[string]float64{"meas": 1, "peak": 1000, "capcut": 1100, "prate": 1100, "acc": 240, "thr": 20})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("rate"); got != 1100 {
		t.Errorf("remeasured at 1200/s: rate %v; want 1100 (the rate cut from)", got)
	}
	// …and a lower one cuts as any throttle does.
	r.set(1030, r.now()-60_000, map[string]float64{"meas": 1, "peak": 1000, "capcut": 1150, "prate": 1150, "acc": 190, "thr": 20})
	r.step(0, 0, 0, 0, 0)
	if got, want := r.get("rate"), 950*(1+lawH); !near(got, want) {
		t.Errorf("remeasured at 950/s: rate %v; want %v", got, want)
	}
	if c := r.get("capcut"); c != 0 {
		t.Errorf("capcut %v after the remeasure; want 0", c)
	}
}

// TestLawCountsAcceptedBeyondTheMeasure: qsum adds up what the service
// accepted beyond the measure in each period without a throttle, and
// subtracts what it accepted below it down to a period of the measure; a
// throttle resets it. It is the one field that may be negative: such a
// state is not taken for garbage.
func TestLawCountsAcceptedBeyondTheMeasure(t *testing.T) {
	r := newLawRig(t)
	ended := func() int64 { return r.now() - 60_000 }
	r.set(1010, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 2, "acc": 210, "wait": 1, "pfull": 1, "qsum": -5})
	res := r.step(0, 0, 0, 0, 0)
	if got := r.get("qsum"); got != 5 {
		t.Errorf("qsum %v; want 5 (-5 + 210 - 200)", got)
	}
	if res[5].(int64) != 0 {
		t.Error("a negative qsum was repaired as garbage")
	}
	r.set(1010, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 2, "acc": 100, "wait": 1, "pfull": 1, "qsum": -150})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("qsum"); got != -200 {
		t.Errorf("after a hole: qsum %v; want -200 (a period of the measure at most)", got)
	}
	if got := r.get("rate"); got != 1010 {
		t.Errorf("after a hole: rate %v; want 1010 (not a state reset)", got)
	}
	r.set(1010, ended(), map[string]float64{"meas": 1, "peak": 1000, "quiet": 2, "acc": 200, "thr": 2, "qsum": 40})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("qsum"); got != 0 {
		t.Errorf("after a throttle: qsum %v; want 0", got)
	}
}

// TestLawSlowStartStopsAtTheWave: after the first wave, slow start doubles
// only up to what the wave saw accepted, and is measured from there.
func TestLawSlowStartStopsAtTheWave(t *testing.T) {
	r := newLawRig(t)
	r.set(600, r.now()-60_000, map[string]float64{"meas": 0, "peak": 900, "acc": 120, "wait": 1})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("rate"); got != 900 {
		t.Errorf("slow start from 600 with the wave at 900: rate %v; want 900", got)
	}
	if got := r.get("meas"); got != 1 {
		t.Errorf("meas %v; want 1 (probing from the wave's rate on)", got)
	}
	r.set(300, r.now()-60_000, map[string]float64{"meas": 0, "peak": 900, "acc": 60, "wait": 1})
	r.step(0, 0, 0, 0, 0)
	if got := r.get("rate"); got != 600 {
		t.Errorf("slow start from 300: rate %v; want 600 (doubling)", got)
	}
}

// TestAnswersReachTheirPeriodWithoutCalls: answers counted just before the
// fleet's period ends reach that period before it closes even if the
// process calls nothing after them (its callers all sleep through a
// backoff): a timer reports them just after the end.
func TestAnswersReachTheirPeriodWithoutCalls(t *testing.T) {
	s := startRedis(t)
	rdb := client(t, s)
	l := newLimiter(t, rdb, redisretry.Config{Key: t.Name(), Timeout: time.Second})
	now := time.Now()
	l.ReserveAt(now, time.Time{}, time.Time{})
	l.ObserveAt(now, retry.OutcomeAccepted) // something accepted: the fleet starts at once
	l.ObserveAt(now, retry.OutcomeThrottled)
	waitFor(t, time.Second, func() bool { _, on := l.Rate(); return on }, "limiting")
	ctx := context.Background()
	for range 20 {
		// The open period's end, on this clock.
		srv, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		ps, err := rdb.HGet(ctx, l.Key(), "ps").Float64()
		if err != nil {
			t.Fatal(err)
		}
		end := time.Now().Add(time.Duration(ps)*time.Microsecond + redisretry.DefaultInterval - time.Duration(srv.UnixMicro())*time.Microsecond)
		if time.Until(end) < 40*time.Millisecond {
			time.Sleep(time.Until(end) + 60*time.Millisecond) // the next period
			continue
		}
		time.Sleep(time.Until(end) - 30*time.Millisecond)
		// A reservation leases (a report): no background report is due for
		// an Interval after it.
		l.ReserveAt(time.Now(), time.Time{}, time.Time{})
		for range 50 {
			l.ObserveAt(time.Now(), retry.OutcomeAccepted)
		}
		time.Sleep(time.Until(end) + 20*time.Millisecond) // ended, not closed (+50 ms)
		acc, err := rdb.HGet(ctx, l.Key(), "acc").Float64()
		if err != nil {
			t.Fatal(err)
		}
		if acc < 50 {
			t.Fatalf("20 ms after the period's end: %v accepted answers in it; want the 50 counted before its end", acc)
		}
		return
	}
	t.Fatal("never found a period to test in")
}

// TestLawLeasesWithinLeaseAhead: the line leases no slot that begins more
// than Lease ahead — unless the asking process has gone that much longer
// without one (a late joiner otherwise found the line a period ahead,
// held there by processes that leased the moment it came within reach).
func TestLawLeasesWithinLeaseAhead(t *testing.T) {
	r := newLawRig(t)
	got := func(res []any) int64 { return res[4].(int64) }
	end := r.now() + 150_000
	r.set(1000, end, map[string]float64{"meas": 1, "tat": float64(r.now() + 120_000)})
	if n := got(r.lease(0, 0, 0, 0, end, 5, 0)); n != 0 {
		t.Errorf("line 120 ms ahead, not starved: %d slots leased; want 0 (Lease is 50 ms)", n)
	}
	if n := got(r.lease(0, 0, 0, 0, end, 5, 100_000)); n != 5 {
		t.Errorf("line 120 ms ahead, starved 100 ms: %d slots leased; want 5", n)
	}
	r.set(1000, end, map[string]float64{"meas": 1, "tat": float64(r.now() + 30_000)})
	if n := got(r.lease(0, 0, 0, 0, end, 5, 0)); n != 5 {
		t.Errorf("line 30 ms ahead: %d slots leased; want 5", n)
	}
}

// TestLawStartWaitsForAnAcceptedCount: a throttle reported before any
// accepted answer (processes started together) does not start the fleet
// limiting from nothing: it waits a quarter period for other reports, and
// starts from their accepted count when one comes, or at the first report
// after the wait.
func TestLawStartWaitsForAnAcceptedCount(t *testing.T) {
	r := newLawRig(t)
	ctx := context.Background()
	r.rdb.Del(ctx, r.key)
	r.step(0, 3, 0, 0, 0)
	if got := r.get("rate"); got != 0 {
		t.Fatalf("after a throttle with nothing accepted: rate %v; want 0 (still calm)", got)
	}
	if r.get("pend") == 0 {
		t.Fatal("pend not set: the wait is not recorded")
	}
	r.step(40, 2, 0, 0, 0)
	if got := r.get("rate"); got != 40/(float64(lawP)/1e6) {
		t.Errorf("after 40 accepted: rate %v; want %v (40 answers over a period)", got, 40/(float64(lawP)/1e6))
	}
	// With nothing accepted at all, it starts a quarter period later.
	r.rdb.Del(ctx, r.key)
	if err := r.rdb.HSet(ctx, r.key, map[string]any{"rate": 0, "pend": r.now() - lawP/4 - 10_000, "cps": r.now()}).Err(); err != nil {
		t.Fatal(err)
	}
	r.step(0, 0, 0, 0, 0) // a report without a throttle: the pending one counts
	if got := r.get("rate"); got == 0 {
		t.Error("still calm a quarter period after the first throttle")
	}
}

// TestLawStartForgetsTheLastEpisode: when the fleet starts limiting again
// after a calm spell, the last episode's measure flags (its peak measured,
// its growth ramp, its last period full, its previous period's measure,
// what was accepted beyond it, the rate a cut came from) start afresh with
// the peak.
func TestLawStartForgetsTheLastEpisode(t *testing.T) {
	r := newLawRig(t)
	ctx := context.Background()
	r.rdb.Del(ctx, r.key)
	if err := r.rdb.HSet(ctx, r.key, map[string]any{"rate": 0, "cps": r.now(), "peak": 900, "pmeas": 1, "pacc": 180, "prate": 950,
		"qa": 3, "pfull": 1, "qsum": 30, "capcut": 1100}).Err(); err != nil {
		t.Fatal(err)
	}
	r.step(40, 2, 0, 0, 0)
	if got := r.get("rate"); got == 0 {
		t.Fatal("not limiting after a throttle with answers accepted")
	}
	for _, f := range []string{"peak", "pmeas", "pacc", "prate", "qa", "pfull", "qsum", "capcut"} {
		if got := r.get(f); got != 0 {
			t.Errorf("%s = %v at the start of limiting; want 0", f, got)
		}
	}
}
