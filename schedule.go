package retry

import (
	"fmt"
	"io"
	"iter"
	"math"
	"text/tabwriter"
	"time"
)

// Delays returns the delays the Policy would sleep if every attempt failed
// with a transient error carrying no hint: (n, delay) for n = 1, 2, … where
// delay follows the n-th failed attempt. Jitter is drawn from the Policy's
// Rand. The sequence ends after MaxAttempts−1 delays, and never when
// MaxAttempts is Unlimited (stop ranging when you want). It ignores
// MaxElapsed, budgets and limiters.
func (p *Policy) Delays() iter.Seq2[int, time.Duration] {
	if p == nil {
		p = &zeroPolicy
	}
	return func(yield func(int, time.Duration) bool) {
		b, j := p.backoff(false), p.jitter()
		var prev time.Duration
		for n := 1; n < p.maxAttempts(); n++ {
			d := j.Apply(JitterInput{Delay: b.Delay(n), Prev: prev, Base: b.Delay(1), Cap: b.Max()}, p.rand())
			if !yield(n, d) {
				return
			}
			prev = d
		}
	}
}

// Step is one row of a Policy's schedule.
type Step struct {
	Attempt  int           // the attempt this delay precedes (2 for the first retry)
	Delay    time.Duration // the schedule's delay before jitter
	Min, Max time.Duration // the range jitter can produce
	// TotalMin and TotalMax bound the time slept before this attempt in all.
	TotalMin, TotalMax time.Duration
}

// Plan returns the Policy's schedule with its jitter ranges, at most limit
// rows (all of them when limit ≤ 0 and MaxAttempts is finite; 20 when it is
// Unlimited). It draws no random numbers.
func (p *Policy) Plan(limit int) []Step {
	if p == nil {
		p = &zeroPolicy
	}
	n := p.maxAttempts() - 1
	if limit <= 0 {
		limit = 20
		if p.MaxAttempts >= 0 {
			limit = n
		}
	}
	n = min(n, limit, 10000)
	b, j := p.backoff(false), p.jitter()
	steps := make([]Step, 0, n)
	var lo, hi, totLo, totHi time.Duration
	top := math.Nextafter(1, 0)
	for i := 1; i <= n; i++ {
		d := b.Delay(i)
		in := JitterInput{Delay: d, Base: b.Delay(1), Cap: b.Max()}
		in.Prev = lo
		lo = j.Apply(in, 0)
		in.Prev = hi
		hi = j.Apply(in, top)
		totLo, totHi = satAdd(totLo, lo), satAdd(totHi, hi)
		steps = append(steps, Step{Attempt: i + 1, Delay: d, Min: lo, Max: hi, TotalMin: totLo, TotalMax: totHi})
	}
	return steps
}

func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// WriteSchedule prints the Policy and its Plan(limit) as a table: the dry
// run of the retry command.
func (p *Policy) WriteSchedule(w io.Writer, limit int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "attempt\tdelay\tjittered min\tjittered max\ttotal min\ttotal max\t\n")
	fmt.Fprintf(tw, "1\t-\t-\t-\t0s\t0s\t\n")
	for _, s := range p.Plan(limit) {
		fmt.Fprintf(tw, "%d\t%v\t%v\t%v\t%v\t%v\t\n", s.Attempt, rnd(s.Delay), rnd(s.Min), rnd(s.Max), rnd(s.TotalMin), rnd(s.TotalMax))
	}
	if _, err := fmt.Fprintf(w, "policy: %v\n", p); err != nil {
		return err
	}
	return tw.Flush()
}

func rnd(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}
