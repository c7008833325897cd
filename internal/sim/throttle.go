// Package sim holds discrete-event simulations in virtual time that drive
// the retry package's explicit-time APIs (Policy.Start, Run, Budget and
// AdaptiveLimiter's At methods): the throttled-service model and the model
// of the AWS Architecture Blog's backoff post. No timers, no goroutines: a
// run is a pure function of its configuration and seed.
package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jittered/retry"
)

// ThrottleConfig is the throttled-service model: Clients writers each write
// one item at a time until Items items are written (or given up) to a service
// whose capacity is a token bucket of Rate writes/s and Burst; a write over
// capacity is rejected at once with a throttle.
type ThrottleConfig struct {
	Clients int
	Items   int
	Rate    float64       // service capacity, writes per second
	Burst   float64       // service bucket size
	RTT     time.Duration // round trip of one attempt (default 1 ms)
	// NewPolicy returns the Policy every client uses, built afresh for each
	// run (budgets and limiters are shared state). Its Rand should be seeded
	// for a deterministic run.
	NewPolicy func(seed uint64) *retry.Policy
	Seed      uint64
	// Limit bounds the simulated time (default 10 minutes).
	Limit time.Duration
	// Context, if set, stops the run early (checked every few thousand
	// events: within milliseconds of real time); Throttle then returns its
	// error.
	Context context.Context
}

// ThrottleResult is what one run measured.
type ThrottleResult struct {
	Wall      time.Duration // until the last item is done
	Ideal     time.Duration // Items / Rate
	Attempts  int
	Throttled int
	Failures  int // items given up on
	P50, P99  time.Duration
	// Per 100 ms of simulated time: accepted and throttled attempts.
	Accepted, Rejected []int
	// Per 100 ms: the adaptive limiter's rate at the last send (0 while not
	// limiting, or with no limiter).
	LimiterRate []float64
}

// WallRatio is Wall ÷ Ideal.
func (r ThrottleResult) WallRatio() float64 { return r.Wall.Seconds() / r.Ideal.Seconds() }

// AttemptsPerItem is Attempts ÷ Items.
func (r ThrottleResult) AttemptsPerItem(items int) float64 {
	return float64(r.Attempts) / float64(items)
}

// ErrThrottled is the error the simulated service answers over capacity.
var ErrThrottled = retry.Throttle(errors.New("ProvisionedThroughputExceededException"))

type evKind uint8

const (
	evStart evKind = iota // client takes the next item
	evSend                // attempt leaves the client
	evReply               // answer arrives at the client
	evRetry               // backoff over: ask the limiter, then send
)

type event struct {
	at     time.Time
	seq    uint64
	client int
	kind   evKind
	ok     bool
}

type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// Epoch is the virtual time at which simulations start.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Throttle runs the throttled-service model.
func Throttle(cfg ThrottleConfig) (ThrottleResult, error) {
	if cfg.Clients <= 0 || cfg.Items <= 0 || !(cfg.Rate > 0) || cfg.Burst < 0 || cfg.NewPolicy == nil {
		return ThrottleResult{}, fmt.Errorf("sim: invalid config: clients=%d items=%d rate=%v burst=%v (need clients, items, rate > 0, burst ≥ 0 and NewPolicy)", cfg.Clients, cfg.Items, cfg.Rate, cfg.Burst)
	}
	rtt := cfg.RTT
	if rtt <= 0 {
		rtt = time.Millisecond
	}
	limit := cfg.Limit
	if limit <= 0 {
		limit = 10 * time.Minute
	}
	p := cfg.NewPolicy(cfg.Seed)
	res := ThrottleResult{Ideal: time.Duration(float64(cfg.Items) / cfg.Rate * float64(time.Second))}

	// service bucket
	tokens, last := max(cfg.Burst, 1), Epoch
	admit := func(now time.Time) bool {
		tokens = min(max(cfg.Burst, 1), tokens+now.Sub(last).Seconds()*cfg.Rate)
		last = now
		if tokens >= 1 {
			tokens--
			return true
		}
		return false
	}
	bucket := func(now time.Time) int { return int(now.Sub(Epoch) / (100 * time.Millisecond)) }
	mark := func(s *[]int, now time.Time) {
		i := bucket(now)
		for len(*s) <= i {
			*s = append(*s, 0)
		}
		(*s)[i]++
	}

	type client struct {
		run   retry.Run
		start time.Time
		busy  bool
	}
	clients := make([]client, cfg.Clients)
	var q queue
	var seq uint64
	push := func(at time.Time, c int, k evKind, ok bool) {
		seq++
		heap.Push(&q, event{at: at, seq: seq, client: c, kind: k, ok: ok})
	}
	next, done := 0, 0
	lat := make([]time.Duration, 0, cfg.Items)
	for i := range clients {
		push(Epoch, i, evStart, false)
	}
	steps := 0
	for q.Len() > 0 {
		if steps++; steps%4096 == 0 && cfg.Context != nil && cfg.Context.Err() != nil {
			return res, context.Cause(cfg.Context)
		}
		ev := heap.Pop(&q).(event)
		now := ev.at
		if now.Sub(Epoch) > limit {
			return res, fmt.Errorf("sim: still running after %v of simulated time (%d of %d items done)", limit, done, cfg.Items)
		}
		c := &clients[ev.client]
		switch ev.kind {
		case evStart:
			if next >= cfg.Items {
				continue
			}
			next++
			c.run, c.start, c.busy = p.Start(now), now, true
			fallthrough
		case evRetry:
			if wait, _ := c.run.ReserveAt(now, time.Time{}); wait > 0 {
				push(now.Add(wait), ev.client, evRetry, false)
			} else {
				push(now, ev.client, evSend, false)
			}
		case evSend:
			res.Attempts++
			if rl, ok := p.Limiter.(interface{ Rate() (float64, bool) }); ok {
				i := bucket(now)
				for len(res.LimiterRate) <= i {
					res.LimiterRate = append(res.LimiterRate, 0)
				}
				res.LimiterRate[i], _ = rl.Rate()
			}
			ok := admit(now.Add(rtt / 2))
			if ok {
				mark(&res.Accepted, now)
			} else {
				res.Throttled++
				mark(&res.Rejected, now)
			}
			push(now.Add(rtt), ev.client, evReply, ok)
		case evReply:
			if ev.ok {
				c.run.SucceededAt(now)
			} else {
				if _, gerr := c.run.FailedAt(now, ErrThrottled, time.Time{}); gerr == nil {
					push(now, ev.client, evRetry, false) // ReserveAt waits out the delay
					continue
				}
				res.Failures++
			}
			done++
			lat = append(lat, now.Sub(c.start))
			res.Wall = max(res.Wall, now.Sub(Epoch))
			push(now, ev.client, evStart, false)
		}
	}
	slices.Sort(lat)
	res.P50, res.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	n := max(len(res.Accepted), len(res.Rejected))
	res.Accepted = append(res.Accepted, make([]int, n-len(res.Accepted))...)
	res.Rejected = append(res.Rejected, make([]int, n-len(res.Rejected))...)
	return res, nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
