package sim

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jittered/retry"
)

// BrookerConfig is the model of the AWS Architecture Blog post "Exponential
// Backoff And Jitter" (Marc Brooker, 2015), as its published simulator
// defines it: a discrete-event simulation in milliseconds; every one-way
// message takes |Normal(10, 2)| ms; the server holds one row with an integer
// version and serves messages instantly; each client wants to update the
// row once: at t = 0 it reads, then writes with the version it read; the
// write succeeds only if the version still matches (and increments it); on
// failure the client sleeps backoff(n) — n = 1 on the first retry — and
// reads again.
type BrookerConfig struct {
	Clients int
	Trials  int           // runs averaged (100 in the post)
	Base    time.Duration // 5 ms in the post
	Cap     time.Duration // 2000 ms in the post
	Seed    uint64
	// Ctx, if set, stops the runs early when done: Brooker then returns
	// Ctx's cause.
	Ctx context.Context
}

// BrookerStrategy names a backoff of the model.
type BrookerStrategy struct {
	Name string
	// Delay returns the sleep after the n-th failure given the previous
	// sleep (0 before the first), drawing from u (uniform in [0, 1)); ok
	// false means the client gives up (a budget refused).
	Delay func(n int, prev time.Duration, u float64) (d time.Duration, ok bool)
	// New, if set, builds per-trial shared state (a budget) and returns the
	// Delay to use for that trial.
	New func() func(n int, prev time.Duration, u float64) (time.Duration, bool)
}

// BrookerResult averages Trials runs.
type BrookerResult struct {
	Calls  float64       // write requests per run: clients + failed writes
	Time   time.Duration // until the last client's success reply
	GaveUp float64       // clients that gave up per run (budget strategies)
}

// postExpo is the post's expo(n) = min(cap, base·2ⁿ), as an Exponential whose
// first step (n = 1) is 2·base.
func postExpo(base, limit time.Duration) retry.Exponential {
	return retry.Exponential{Base: 2 * base, Multiplier: 2, Cap: limit}
}

// BrookerStrategies returns the post's five strategies — none, exponential,
// full, equal, decorrelated — computed with this package's schedule and
// jitter types, and ours: full jitter with a retry budget.
func BrookerStrategies(base, limit time.Duration) []BrookerStrategy {
	e := postExpo(base, limit)
	jit := func(j retry.Jitter) func(int, time.Duration, float64) (time.Duration, bool) {
		return func(n int, prev time.Duration, u float64) (time.Duration, bool) {
			return j.Apply(retry.JitterInput{Delay: e.Delay(n), Prev: prev, Base: base, Cap: limit}, u), true
		}
	}
	return []BrookerStrategy{
		{Name: "none", Delay: func(int, time.Duration, float64) (time.Duration, bool) { return 0, true }},
		{Name: "exponential", Delay: jit(retry.NoJitter)},
		{Name: "full jitter", Delay: jit(retry.FullJitter)},
		{Name: "equal jitter", Delay: jit(retry.EqualJitter)},
		{Name: "decorrelated", Delay: jit(retry.DecorrelatedJitter)},
		{Name: "full jitter + budget", New: func() func(int, time.Duration, float64) (time.Duration, bool) {
			// Retries up to 1.5 per client on average, plus 20 in reserve.
			b, _ := retry.NewBudget(retry.BudgetConfig{Capacity: 20, RetryCost: 1, AttemptDeposit: 1.5})
			full := jit(retry.FullJitter)
			return func(n int, prev time.Duration, u float64) (time.Duration, bool) {
				if n == 1 {
					b.StartAt(time.Time{})
				}
				if _, ok := b.AcquireAt(time.Time{}, retry.KindTransient); !ok {
					return 0, false
				}
				return full(n, prev, u)
			}
		}},
	}
}

type bEvent struct {
	at     float64 // ms
	seq    int
	client int
	kind   uint8 // 0 read arrives at server, 1 read reply, 2 write arrives, 3 write reply, 4 wake
	ver    int
	ok     bool
}

type bQueue []bEvent

func (q bQueue) Len() int { return len(q) }
func (q bQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q bQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *bQueue) Push(x any)   { *q = append(*q, x.(bEvent)) }
func (q *bQueue) Pop() any {
	o := *q
	e := o[len(o)-1]
	*q = o[:len(o)-1]
	return e
}

// Brooker runs the model for one strategy.
func Brooker(cfg BrookerConfig, s BrookerStrategy) (BrookerResult, error) {
	if cfg.Clients <= 0 || cfg.Trials <= 0 || cfg.Base <= 0 || cfg.Cap < cfg.Base {
		return BrookerResult{}, fmt.Errorf("sim: brooker: clients=%d trials=%d base=%v cap=%v: need clients, trials > 0 and 0 < base ≤ cap", cfg.Clients, cfg.Trials, cfg.Base, cfg.Cap)
	}
	var calls, gaveUp, total float64
	for trial := range cfg.Trials {
		if cfg.Ctx != nil && cfg.Ctx.Err() != nil {
			return BrookerResult{}, context.Cause(cfg.Ctx)
		}
		r := rand.New(rand.NewPCG(cfg.Seed, uint64(trial)))
		msg := func() float64 { return math.Abs(r.NormFloat64()*2 + 10) }
		delay := s.Delay
		if s.New != nil {
			delay = s.New()
		}
		version := 0
		fails := make([]int, cfg.Clients)
		prev := make([]time.Duration, cfg.Clients)
		var q bQueue
		seq := 0
		push := func(e bEvent) { seq++; e.seq = seq; heap.Push(&q, e) }
		for c := range cfg.Clients {
			push(bEvent{at: msg(), client: c, kind: 0})
		}
		writes, last := 0, 0.0
		for q.Len() > 0 {
			e := heap.Pop(&q).(bEvent)
			switch e.kind {
			case 0: // read arrives: reply with the version
				push(bEvent{at: e.at + msg(), client: e.client, kind: 1, ver: version})
			case 1: // read reply: send the write
				writes++
				push(bEvent{at: e.at + msg(), client: e.client, kind: 2, ver: e.ver})
			case 2: // write arrives
				ok := e.ver == version
				if ok {
					version++
				}
				push(bEvent{at: e.at + msg(), client: e.client, kind: 3, ok: ok})
			case 3: // write reply
				if e.ok {
					last = max(last, e.at)
					continue
				}
				fails[e.client]++
				d, ok := delay(fails[e.client], prev[e.client], r.Float64())
				if !ok {
					gaveUp++
					continue
				}
				prev[e.client] = d
				push(bEvent{at: e.at + float64(d)/float64(time.Millisecond), client: e.client, kind: 4})
			case 4: // wake: read again
				push(bEvent{at: e.at + msg(), client: e.client, kind: 0})
			}
		}
		calls += float64(writes)
		total += last
	}
	n := float64(cfg.Trials)
	return BrookerResult{Calls: calls / n, Time: time.Duration(total / n * float64(time.Millisecond)), GaveUp: gaveUp / n}, nil
}
