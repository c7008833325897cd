package sim

import (
	"math"
	"slices"
	"time"
)

// maxSubsetClients bounds the clients whose subsets subsetBound enumerates
// (2^16 subsets × a few dozen segments: milliseconds per scenario).
const maxSubsetClients = 16

// subsetBound is a lower bound on the wall time of any strategy, tighter
// than the whole service's capacity alone when the clients' own writers
// cannot use it: every set S of clients must get its items through both
// its writers (one attempt per RTT each, the injected errors' retries and
// first sleeps added) and the service, so by the wall time T
//
//	Σ_{i∈S} items_i ≤ ∫₀ᵀ min(D_S(t), c(t)) dt + the bucket S can draw on,
//
// where D_S(t) is what S's started writers can complete per second and
// c(t) what the service accepts (both zero during an outage, when no
// attempt succeeds). The bucket lets S complete faster than c only while
// D_S > c, and only from the tokens it holds when such a stretch begins:
// within the stretch, the bucket refills only by what the service is not
// asked for (total acceptance under c), and S then completes that much
// less under min(D_S, c) — so each stretch adds at most one bucket: the
// initial one at t = 0, a full one at a later start. The bound is the
// largest, over every S, of the first T at which the inequality can hold.
//
// With one client, or clients whose writers exceed the capacity
// throughout, it is the capacity bound; it is larger when work is uneven
// and few writers are left to do the last of it (a client with most of
// the items and a sixth of the writers finishes alone, at its writers'
// pace, whatever the strategy).
func (s *Scenario) subsetBound() time.Duration {
	k := len(s.Clients)
	if k == 0 || k > maxSubsetClients {
		return 0
	}
	e := s.ErrorRate
	perItem := (s.RTT.Seconds() + e*(CompareBase/2).Seconds()) / (1 - e) // a writer's seconds per item
	// Breakpoints: starts, steps, the end of background load, outages.
	bp := []time.Duration{0}
	for _, c := range s.Clients {
		bp = append(bp, c.Start)
	}
	for _, st := range s.Steps {
		bp = append(bp, st.At)
	}
	if s.Saturated {
		bp = append(bp, s.BackgroundFor)
	}
	for _, o := range s.Outages {
		bp = append(bp, o.From, o.To)
	}
	slices.Sort(bp)
	bp = slices.Compact(bp)

	type segment struct {
		from   float64   // start, in seconds
		c      float64   // items/s the service accepts (0 while down)
		bucket float64   // items the bucket holds when full
		d      []float64 // items/s each client's writers complete (0 before its start or while down)
	}
	segs := make([]segment, len(bp))
	for j, t := range bp {
		sg := segment{from: t.Seconds(), d: make([]float64, k)}
		if !s.down(t) {
			f := s.factor(t)
			sg.c = s.Capacity * f * (1 - e)
			sg.bucket = max(1, s.Burst*s.Capacity*f) * (1 - e)
			for i, c := range s.Clients {
				if c.Start <= t {
					sg.d[i] = float64(c.Writers) / perItem
				}
			}
		}
		segs[j] = sg
	}
	initial := 0.0
	if !s.Saturated {
		initial = segs[0].bucket
	}

	worst := 0.0
	for set := 1; set < 1<<k; set++ {
		need := 0.0
		for i, c := range s.Clients {
			if set&(1<<i) != 0 {
				need += float64(c.Items)
			}
		}
		got, stretch := 0.0, false
		for j, sg := range segs {
			ds := 0.0
			for i := range k {
				if set&(1<<i) != 0 {
					ds += sg.d[i]
				}
			}
			if ds > sg.c && !stretch {
				// A stretch in which S could outrun the service begins:
				// it may draw the tokens the bucket holds.
				if j == 0 {
					got += initial
				} else {
					got += sg.bucket
				}
			}
			stretch = ds > sg.c
			rate := min(ds, sg.c)
			end := math.Inf(1)
			if j+1 < len(segs) {
				end = segs[j+1].from
			}
			if got >= need {
				worst = max(worst, sg.from)
				break
			}
			if rate > 0 && got+rate*(end-sg.from) >= need {
				worst = max(worst, sg.from+(need-got)/rate)
				break
			}
			if math.IsInf(end, 1) {
				break // never done: no bound from this set (not reached: the last segment is up)
			}
			got += rate * (end - sg.from)
		}
	}
	return time.Duration(worst * float64(time.Second))
}
