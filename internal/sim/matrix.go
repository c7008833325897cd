package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jittered/retry"
)

// Scenario is one cell of the scenario matrix: K independent clients (each
// with its own Policy, hence its own limiter, as K processes would have)
// writing to one service whose capacity changes over time.
type Scenario struct {
	Seed     uint64
	Capacity float64       // writes/s before any step
	Burst    float64       // the service bucket, in seconds of capacity
	RTT      time.Duration // round trip of one attempt
	Clients  []ClientSpec
	// Saturated: the service is already saturated when the clients start
	// (its bucket is empty) and background load takes Background of its
	// capacity until BackgroundFor.
	Saturated     bool
	Background    float64
	BackgroundFor time.Duration
	Steps         []Step   // capacity multipliers from a time on
	Outages       []Window // the service answers every attempt with an error
	Hint          time.Duration
	ErrorRate     float64 // accepted attempts that fail with a transient error
}

// (RandomScenario draws ranges where the limiter matters: the clients'
// demand exceeds the capacity.)

// ClientSpec is one client (a process): its writers, its share of the work
// and when it starts.
type ClientSpec struct {
	Writers int
	Items   int
	Start   time.Duration
}

// Step multiplies the base capacity by Factor from At on.
type Step struct {
	At     time.Duration
	Factor float64
}

// Window is a span of simulated time.
type Window struct{ From, To time.Duration }

// String describes the scenario in one line.
func (s Scenario) String() string {
	w, n := 0, 0
	for _, c := range s.Clients {
		w += c.Writers
		n += c.Items
	}
	str := fmt.Sprintf("seed=%d C=%.0f/s burst=%.2fs rtt=%v K=%d writers=%d items=%d", s.Seed, s.Capacity, s.Burst, s.RTT, len(s.Clients), w, n)
	if s.Saturated {
		str += fmt.Sprintf(" saturated(bg %.0f%% for %v)", 100*s.Background, s.BackgroundFor.Round(time.Millisecond))
	}
	for _, st := range s.Steps {
		str += fmt.Sprintf(" ×%g@%v", st.Factor, st.At.Round(time.Millisecond))
	}
	for _, o := range s.Outages {
		str += fmt.Sprintf(" outage[%v,%v]", o.From.Round(time.Millisecond), o.To.Round(time.Millisecond))
	}
	if s.Hint > 0 {
		str += fmt.Sprintf(" hint=%v", s.Hint.Round(time.Millisecond))
	}
	if s.ErrorRate > 0 {
		str += fmt.Sprintf(" errors=%.1f%%", 100*s.ErrorRate)
	}
	return str
}

// RandomScenario draws a scenario from the matrix's ranges: capacity 5 to
// 50,000/s (log-uniform), burst 0–1 s, RTT 1–10 ms, 1–2000 writers, K = 1–16
// clients with equal or unequal shares and staggered starts (or starts
// 0–5 ms apart, as processes started together), a service
// already saturated at the start, ×¼ and ×4 capacity steps, outages,
// Retry-After hints and 0–10 % transient errors. The work is sized for an
// ideal run of 8–30 s (at most 300,000 items).
func RandomScenario(seed uint64) Scenario {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	u := rng.Float64
	logU := func(lo, hi float64) float64 { return lo * math.Pow(hi/lo, u()) }
	s := Scenario{Seed: seed}
	s.Capacity = math.Round(logU(5, 50000))
	s.Burst = u()
	s.RTT = time.Duration(logU(1, 10) * float64(time.Millisecond))
	d := 8 + 22*u() // ideal seconds
	items := int(min(s.Capacity*d, 300000))
	items = max(items, 40)
	dur := time.Duration(float64(items) / s.Capacity * float64(time.Second))

	k := 1
	if u() > 0.3 {
		k = 2 + rng.IntN(15)
	}
	// Writers: 1–2000, but at least enough for a demand of 1.5× the
	// capacity (at one attempt per RTT each): with fewer, the writers, not
	// the service, bound the run, and the scenario says nothing of a
	// limiter.
	writers := max(k, int(logU(1, 2000)), int(math.Ceil(1.5*s.Capacity*s.RTT.Seconds())))
	shares := make([]float64, k)
	equal := u() < 0.5
	sum := 0.0
	for i := range shares {
		shares[i] = 1
		if !equal {
			shares[i] = 0.2 + u()
		}
		sum += shares[i]
	}
	stagger := k > 1 && u() < 0.4
	left, wleft := items, writers
	for i := range k {
		c := ClientSpec{Items: max(1, int(float64(items)*shares[i]/sum)), Writers: max(1, int(float64(writers)*shares[i]/sum))}
		if i == k-1 {
			c.Items, c.Writers = max(1, left), max(1, wleft)
		}
		left -= c.Items
		wleft -= c.Writers
		if stagger && i > 0 {
			c.Start = time.Duration(u() * 0.3 * float64(dur))
		}
		s.Clients = append(s.Clients, c)
	}
	if u() < 0.3 {
		s.Saturated = true
		s.Background = 0.5 + 0.4*u()
		s.BackgroundFor = time.Duration((0.1 + 0.3*u()) * float64(dur))
	}
	switch x := u(); {
	case x < 0.35: // a drop to ¼ and back
		t1 := time.Duration((0.15 + 0.5*u()) * float64(dur))
		s.Steps = []Step{{t1, 0.25}, {t1 + time.Duration((1+3*u())*float64(time.Second)), 1}}
	case x < 0.5: // capacity ×4 from a quarter
		s.Capacity /= 4
		s.Steps = []Step{{time.Duration((0.1 + 0.3*u()) * float64(dur)), 4}}
	}
	if u() < 0.15 {
		t := time.Duration((0.2 + 0.6*u()) * float64(dur))
		s.Outages = []Window{{t, t + time.Duration((0.3+1.7*u())*float64(time.Second))}}
	}
	if u() < 0.3 {
		s.Hint = time.Duration(logU(50, 1000) * float64(time.Millisecond))
	}
	if u() < 0.5 {
		s.ErrorRate = 0.1 * u()
	}
	if k > 1 && !stagger {
		// Clients that start "together" are processes started together:
		// a few milliseconds apart, so that one's first wave meets the
		// service's bucket before another's. (Drawn last, so that the
		// other draws of a seed stay as they were.)
		for i := range s.Clients {
			s.Clients[i].Start = time.Duration(u() * float64(5*time.Millisecond))
		}
	}
	return s
}

// factor is the capacity multiplier at t (steps) times what background load
// leaves.
func (s *Scenario) factor(t time.Duration) float64 {
	f := 1.0
	for _, st := range s.Steps {
		if t >= st.At {
			f = st.Factor
		}
	}
	if s.Saturated && t < s.BackgroundFor {
		f *= 1 - s.Background
	}
	return f
}

func (s *Scenario) down(t time.Duration) bool {
	for _, o := range s.Outages {
		if t >= o.From && t < o.To {
			return true
		}
	}
	return false
}

// Ideal is the shortest possible wall time: when the capacity left to the
// clients (steps, background, outages; the initial bucket counted) has
// served all the work, each accepted attempt failing with ErrorRate; and no
// shorter than any client's own writers can do the work: one attempt per
// RTT per writer, 1/(1−ErrorRate) attempts per item, and after each
// injected error the first retry's mean sleep, which every strategy of the
// matrix pays (full jitter over CompareBase: CompareBase/2), with no progress
// while the service is down. Without those terms, a scenario whose few writers spend
// their time sleeping out errors, or waiting out an outage, was charged to
// the limiter although plain backoff took as long. Since 2026-12-07 the
// same holds for every set of clients together (subsetBound): clients that
// start late, or whose writers can use only part of a capacity that steps,
// are bounded by their writers and the capacity over time together.
func (s *Scenario) Ideal() time.Duration {
	return max(s.capacityBound(), s.subsetBound())
}

// capacityBound is Ideal without subsetBound: the whole service's capacity,
// and each client's writers alone.
func (s *Scenario) capacityBound() time.Duration {
	total := 0
	var worst time.Duration
	e := s.ErrorRate
	perItem := (float64(s.RTT) + e*float64(CompareBase/2)) / (1 - e)
	for _, c := range s.Clients {
		total += c.Items
		busy := time.Duration(float64(c.Items) / float64(c.Writers) * perItem)
		worst = max(worst, s.upFor(c.Start, busy))
	}
	need := float64(total) / (1 - s.ErrorRate)
	got := 0.0
	if !s.Saturated {
		got = max(1, s.Burst*s.Capacity*s.factor(0)) // the service's bucket at the start
	}
	const dt = time.Millisecond
	t := time.Duration(0)
	for got < need {
		if !s.down(t) {
			got += s.Capacity * s.factor(t) * dt.Seconds()
		}
		t += dt
		if t > 24*time.Hour {
			break
		}
	}
	return max(t, worst)
}

// upFor is when, starting at from, the service has been up for d: a
// client's writers make no progress during an outage, so an outage inside
// a client's own busy span lengthens its bound by its overlap.
func (s *Scenario) upFor(from, d time.Duration) time.Duration {
	end := from + d
	for _, o := range s.Outages { // in time order, disjoint
		if o.To <= from || o.From >= end {
			continue
		}
		end += o.To - max(o.From, from)
	}
	return end
}

// JainMinAnswers is the smallest fair share, in accepted answers over the
// measured span, for which a scenario's Jain index is reported. Below it
// the index measures counting noise more than the limiter: for counts of
// mean m drawn independently (Poisson), a perfectly fair process scores
// about 1/(1 + 1/m) — 0.99 at 100, 0.83 at 5 — and a service of 2/s shared
// by 15 clients gives each about one answer per 4 s.
const JainMinAnswers = 100

// SettleTime is how long after the last change a scenario is taken to be
// in steady state, for ScenarioResult.JainSteady.
const SettleTime = 3 * time.Second

// ScenarioResult is what one scenario measured for one strategy.
type ScenarioResult struct {
	Wall, Ideal time.Duration
	Items       int
	Attempts    int
	Throttled   int
	Failures    int
	// Jain is Jain's fairness index of the clients' accepted rates, each
	// divided by its max-min fair share, while all clients were busy
	// (NaN when K = 1, that span is under 2 s, or a client's fair share
	// in it is under JainMinAnswers).
	Jain float64
	// JainSteady is the same index in steady state: from SettleTime after
	// the last change (a client's start, a capacity step, the end of
	// background load or of an outage) until the first client finishes.
	JainSteady float64
	// RecoverUp is the time from a ×4 capacity step until a 100 ms slot
	// accepted ≥ 90 % of the new capacity; RecoverDown, from a ×¼ step until
	// a 100 ms slot sent ≤ 110 % of it. −1 when not measured (no such step,
	// the work done first, or capacity too low to tell in 100 ms).
	RecoverUp, RecoverDown time.Duration
	// FirstWave counts the throttles of each client's first wave: the
	// first attempts of its writers, all sent before any answer came back.
	// No limiter that starts calm can prevent them.
	FirstWave int
	// Per client: attempts accepted (or failed after admission) and
	// throttled.
	ClientAccepted, ClientThrottled []int
}

// WallRatio is Wall ÷ Ideal.
func (r ScenarioResult) WallRatio() float64 { return r.Wall.Seconds() / r.Ideal.Seconds() }

// AttemptsPerItem is Attempts ÷ Items.
func (r ScenarioResult) AttemptsPerItem() float64 { return float64(r.Attempts) / float64(r.Items) }

// ThrottleCost is 1 + the throttled attempts per item beyond the first
// wave: what the limiter is answerable for. (Retries of transient errors
// and outages, which every strategy pays, and the first wave's throttles,
// which no limiter that starts calm can prevent, are left out.)
func (r ScenarioResult) ThrottleCost() float64 {
	return 1 + float64(r.Throttled-r.FirstWave)/float64(r.Items)
}

// client is one client's state in a scenario run.
type client struct {
	p          *retry.Policy
	next, done int
	finish     time.Duration
	accepted   []int // per 100 ms slot
}

// slot is the 100 ms slot t falls in.
func slot(t time.Duration) int { return int(t / (100 * time.Millisecond)) }

// evArrive: an attempt reaches the service.
const evArrive evKind = 100

var errTransient = errors.New("InternalServerError")
var errOutage = errors.New("connection refused")

type mev struct {
	at     time.Time
	seq    uint64
	writer int32
	kind   evKind
	ans    uint8 // evReply: 0 accepted, 1 throttled, 2 error, 3 outage; evArrive: 1 for a writer's first attempt
}

type mqueue []mev

func (q mqueue) Len() int { return len(q) }
func (q mqueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q mqueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mqueue) Push(x any)   { *q = append(*q, x.(mev)) }
func (q *mqueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// RunScenario runs one scenario with every client using newPolicy (a fresh
// Policy per client, seeded apart). It is deterministic for a scenario.
func RunScenario(s Scenario, newPolicy func(seed uint64) *retry.Policy) (ScenarioResult, error) {
	return RunScenarioTrace(s, newPolicy, 0, nil)
}

// RunScenarioTrace is RunScenario calling trace every period of simulated
// time with the attempts sent, accepted and throttled in that period.
func RunScenarioTrace(s Scenario, newPolicy func(seed uint64) *retry.Policy, period time.Duration, trace func(at time.Duration, sent, accepted, throttled int)) (ScenarioResult, error) {
	return runScenario(context.Background(), s, newPolicy, period, trace)
}

// runScenario is RunScenarioTrace stopping early, with ctx's cause, when
// ctx ends (checked every few thousand events).
func runScenario(ctx context.Context, s Scenario, newPolicy func(seed uint64) *retry.Policy, period time.Duration, trace func(at time.Duration, sent, accepted, throttled int)) (ScenarioResult, error) {
	if len(s.Clients) == 0 || !(s.Capacity > 0) || s.RTT <= 0 {
		return ScenarioResult{}, fmt.Errorf("sim: invalid scenario: %v", s)
	}
	res := ScenarioResult{Ideal: s.Ideal(), RecoverUp: -1, RecoverDown: -1}
	limit := 5*res.Ideal + 30*time.Second
	rng := rand.New(rand.NewPCG(s.Seed, 0xe77))

	// the service
	size := func(t time.Duration) float64 { return max(1, s.Burst*s.Capacity*s.factor(t)) }
	tokens, last := size(0), time.Duration(0)
	if s.Saturated {
		tokens = 0
	}
	admit := func(t time.Duration) uint8 {
		if s.down(t) {
			last = t
			return 3
		}
		tokens = min(size(t), tokens+(t-last).Seconds()*s.Capacity*s.factor(t))
		last = t
		if tokens < 1 {
			return 1
		}
		tokens--
		if s.ErrorRate > 0 && rng.Float64() < s.ErrorRate {
			return 2
		}
		return 0
	}
	throttle := error(ErrThrottled)
	if s.Hint > 0 {
		throttle = retry.RetryAfter(s.Hint, ErrThrottled)
	}

	type writer struct {
		client int
		run    retry.Run
		sent   bool // has sent its first attempt
	}
	clients := make([]client, len(s.Clients))
	var writers []writer
	for k, c := range s.Clients {
		clients[k].p = newPolicy(s.Seed*1000 + uint64(k))
		for range c.Writers {
			writers = append(writers, writer{client: k})
		}
	}
	total := 0
	for _, c := range s.Clients {
		total += c.Items
	}
	res.Items = total
	res.ClientAccepted = make([]int, len(s.Clients))
	res.ClientThrottled = make([]int, len(s.Clients))
	var sentSlots, accSlots []int
	bump := func(v *[]int, i int) {
		for len(*v) <= i {
			*v = append(*v, 0)
		}
		(*v)[i]++
	}

	var q mqueue
	var seq uint64
	push := func(at time.Time, w int, k evKind, ans uint8) {
		seq++
		heap.Push(&q, mev{at: at, seq: seq, writer: int32(w), kind: k, ans: ans})
	}
	for i := range writers {
		push(Epoch.Add(s.Clients[writers[i].client].Start), i, evStart, 0)
	}
	done := 0
	var nextTrace time.Duration
	var tSent, tAcc, tThr int
	steps := 0
	for q.Len() > 0 {
		if steps++; steps%4096 == 0 && ctx.Err() != nil {
			return res, context.Cause(ctx)
		}
		ev := heap.Pop(&q).(mev)
		now := ev.at
		t := now.Sub(Epoch)
		if trace != nil && t >= nextTrace {
			trace(nextTrace, tSent, tAcc, tThr)
			tSent, tAcc, tThr = 0, 0, 0
			nextTrace += period
		}
		if t > limit {
			return res, fmt.Errorf("sim: %v: still running after %v of simulated time (%d of %d items done)", s, limit, done, total)
		}
		w := &writers[ev.writer]
		c := &clients[w.client]
		switch ev.kind {
		case evStart:
			if c.next >= s.Clients[w.client].Items {
				continue
			}
			c.next++
			w.run = c.p.Start(now)
			fallthrough
		case evRetry:
			if wait, _ := w.run.ReserveAt(now, time.Time{}); wait > 0 {
				push(now.Add(wait), int(ev.writer), evRetry, 0)
			} else {
				push(now, int(ev.writer), evSend, 0)
			}
		case evSend:
			res.Attempts++
			first := !w.sent
			w.sent = true
			bump(&sentSlots, slot(t))
			// The attempt reaches the service after a jittered one-way delay
			// (0.5–1.5 × RTT/2): real arrivals are not phase-locked.
			oneway := time.Duration(float64(s.RTT/2) * (0.5 + rng.Float64()))
			var tag uint8
			if first {
				tag = 1
			}
			push(now.Add(oneway), int(ev.writer), evArrive, tag)
		case evArrive:
			a := admit(t)
			tSent++
			switch a {
			case 0, 2:
				tAcc++
				bump(&accSlots, slot(t))
				bump(&c.accepted, slot(t))
				res.ClientAccepted[w.client]++
			case 1:
				tThr++
				res.Throttled++
				res.ClientThrottled[w.client]++
				if ev.ans == 1 && t-s.Clients[w.client].Start < 2*s.RTT {
					res.FirstWave++
				}
			}
			push(now.Add(s.RTT/2), int(ev.writer), evReply, a)
		case evReply:
			var err error
			switch ev.ans {
			case 1:
				err = throttle
			case 2:
				err = errTransient
			case 3:
				err = errOutage
			}
			if err == nil {
				w.run.SucceededAt(now)
			} else {
				if _, gerr := w.run.FailedAt(now, err, time.Time{}); gerr == nil {
					push(now, int(ev.writer), evRetry, 0)
					continue
				}
				res.Failures++
			}
			done++
			c.done++
			if c.done == s.Clients[w.client].Items {
				c.finish = t
			}
			res.Wall = max(res.Wall, t)
			push(now, int(ev.writer), evStart, 0)
		}
	}

	// fairness while every client was busy, and in steady state
	res.Jain, res.JainSteady = math.NaN(), math.NaN()
	if len(clients) > 1 {
		var from, to time.Duration = 0, time.Duration(math.MaxInt64)
		for k, c := range clients {
			from = max(from, s.Clients[k].Start)
			to = min(to, c.finish)
		}
		res.Jain = s.jainOver(clients, from+time.Second, to) // 1 s of warm-up
		res.JainSteady = s.jainOver(clients, s.settled(from, to), to)
	}
	// recovery after steps
	for i, st := range s.Steps {
		prev := 1.0
		if i > 0 {
			prev = s.Steps[i-1].Factor
		}
		newCap := s.Capacity * st.Factor * 0.1 // per 100 ms slot
		if newCap < 20 {
			continue
		}
		// Search until the next step (or the end of the work); a ×¼ step not
		// followed by then counts as the whole window (pessimistic).
		until := res.Wall - 500*time.Millisecond
		if i+1 < len(s.Steps) {
			until = min(until, s.Steps[i+1].At)
		}
		found := false
		for j := slot(st.At); j < len(sentSlots) && time.Duration(j)*100*time.Millisecond < until; j++ {
			if s.down(time.Duration(j) * 100 * time.Millisecond) {
				break
			}
			if st.Factor > prev {
				if j < len(accSlots) && float64(accSlots[j]) >= 0.9*newCap {
					res.RecoverUp = time.Duration(j+1)*100*time.Millisecond - st.At
					found = true
					break
				}
			} else if float64(sentSlots[j]) <= 1.1*newCap {
				res.RecoverDown = time.Duration(j+1)*100*time.Millisecond - st.At
				found = true
				break
			}
		}
		if !found && st.Factor < prev && until > st.At+500*time.Millisecond {
			res.RecoverDown = until - st.At
		}
	}
	return res, nil
}

// jainOver is Jain's index of the clients' accepted answers in [from, to),
// each divided by its max-min fair share of their sum (NaN if the span is
// under 2 s or a fair share under JainMinAnswers). A client's demand is
// what its writers can send: one attempt per RTT each, plus the mean sleep
// after an injected error.
func (s *Scenario) jainOver(clients []client, from, to time.Duration) float64 {
	if to-from < 2*time.Second {
		return math.NaN()
	}
	perAttempt := s.RTT.Seconds() + s.ErrorRate*(CompareBase/2).Seconds()
	i0, i1 := slot(from), slot(to)
	x := make([]float64, len(clients))
	demand := make([]float64, len(clients))
	sum := 0.0
	for k, c := range clients {
		for i := i0; i < i1 && i < len(c.accepted); i++ {
			x[k] += float64(c.accepted[i])
		}
		sum += x[k]
		demand[k] = float64(s.Clients[k].Writers) / perAttempt * (to - from).Seconds()
	}
	fair := waterfill(sum, demand)
	if slices.Min(fair) < JainMinAnswers {
		return math.NaN()
	}
	for k := range x {
		x[k] /= fair[k]
	}
	return jain(x)
}

// settled is when, in a span [from, to) in which every client is busy,
// steady state begins: SettleTime after the last client's start, capacity
// step, end of background load or end of an outage before to.
func (s *Scenario) settled(from, to time.Duration) time.Duration {
	last := from
	for _, st := range s.Steps {
		if st.At < to {
			last = max(last, st.At)
		}
	}
	if s.Saturated && s.BackgroundFor < to {
		last = max(last, s.BackgroundFor)
	}
	for _, o := range s.Outages {
		if o.To < to {
			last = max(last, o.To)
		}
	}
	return last + SettleTime
}

// waterfill returns the max-min fair split of capacity among demands.
func waterfill(capacity float64, demand []float64) []float64 {
	n := len(demand)
	out := make([]float64, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case demand[a] < demand[b]:
			return -1
		case demand[a] > demand[b]:
			return 1
		}
		return 0
	})
	left := capacity
	for i, k := range idx {
		share := left / float64(n-i)
		out[k] = min(share, demand[k])
		left -= out[k]
	}
	return out
}

// jain is Jain's fairness index: (Σx)² / (n·Σx²), 1 when all are equal.
func jain(x []float64) float64 {
	var s, s2 float64
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if s2 == 0 {
		return math.NaN()
	}
	return s * s / (float64(len(x)) * s2)
}
