package sim

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

// MatrixRow is one scenario's results, one per strategy.
type MatrixRow struct {
	Scenario Scenario
	Results  []ScenarioResult
	Errs     []error
}

// RunMatrix runs scenarios seeds first..first+n-1 for every strategy, on
// all CPUs. progress, if set, is called after each scenario. It stops early
// (within milliseconds: a running scenario is cut short and left out),
// returning what it has, when ctx ends.
func RunMatrix(ctx context.Context, first uint64, n int, strategies []Strategy, progress func(done int)) []MatrixRow {
	rows := make([]MatrixRow, n)
	var mu sync.Mutex
	next, finished := 0, 0
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				sc := RandomScenario(first + uint64(i))
				row := MatrixRow{Scenario: sc}
				for _, st := range strategies {
					r, err := runScenario(ctx, sc, st.New, 0, nil)
					row.Results = append(row.Results, r)
					row.Errs = append(row.Errs, err)
				}
				if ctx.Err() != nil {
					return // a scenario cut short is left out
				}
				mu.Lock()
				rows[i] = row
				finished++
				if progress != nil {
					progress(finished)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	out := rows[:0]
	for _, r := range rows {
		if len(r.Results) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// Dist is a distribution summary.
type Dist struct {
	N                       int
	Median, P95, Worst, Min float64
}

func dist(v []float64, worstIsHigh bool) Dist {
	v = slices.DeleteFunc(slices.Clone(v), func(x float64) bool { return math.IsNaN(x) })
	if len(v) == 0 {
		return Dist{Median: math.NaN(), P95: math.NaN(), Worst: math.NaN(), Min: math.NaN()}
	}
	slices.Sort(v)
	q := func(p float64) float64 { return v[min(len(v)-1, int(math.Ceil(p*float64(len(v))))-1)] }
	d := Dist{N: len(v), Median: q(0.5), Min: v[0]}
	if worstIsHigh {
		d.P95, d.Worst = q(0.95), v[len(v)-1]
	} else {
		d.P95, d.Worst = v[max(0, int(math.Floor(0.05*float64(len(v)))))], v[0]
	}
	return d
}

// StrategySummary is the matrix's verdict on one strategy.
type StrategySummary struct {
	Name                   string
	Wall, Attempts, Jain   Dist
	JainSteady             Dist // Jain's index in steady state (ScenarioResult.JainSteady)
	AfterWave              Dist // ThrottleCost: 1 + throttles per write beyond the first wave
	RecoverUp, RecoverDown Dist // seconds
	Failures               int  // items given up, all scenarios
	FailedScenarios        int
	Errors                 int // scenarios that did not finish
}

// Summarize reduces the rows to one summary per strategy.
func Summarize(rows []MatrixRow, strategies []Strategy) []StrategySummary {
	out := make([]StrategySummary, len(strategies))
	for i, st := range strategies {
		var wall, att, wave, jn, js, up, down []float64
		s := StrategySummary{Name: st.Name}
		for _, r := range rows {
			if r.Errs[i] != nil {
				s.Errors++
				wall = append(wall, math.Inf(1))
				continue
			}
			x := r.Results[i]
			wall = append(wall, x.WallRatio())
			att = append(att, x.AttemptsPerItem())
			wave = append(wave, x.ThrottleCost())
			jn = append(jn, x.Jain)
			js = append(js, x.JainSteady)
			if x.RecoverUp >= 0 {
				up = append(up, x.RecoverUp.Seconds())
			}
			if x.RecoverDown >= 0 {
				down = append(down, x.RecoverDown.Seconds())
			}
			s.Failures += x.Failures
			if x.Failures > 0 {
				s.FailedScenarios++
			}
		}
		s.Wall, s.Attempts, s.Jain = dist(wall, true), dist(att, true), dist(jn, false)
		s.JainSteady = dist(js, false)
		s.AfterWave = dist(wave, true)
		s.RecoverUp, s.RecoverDown = dist(up, true), dist(down, true)
		out[i] = s
	}
	return out
}

// Goals are the limiter issue's targets for the recommended setup.
var Goals = struct {
	WallWorst, WallP95, WallMedian      float64
	AttemptsMedian, AttemptsWorst, Jain float64
}{1.25, 1.10, 1.03, 1.15, 1.5, 0.95}

// Misses lists the goals s misses (none: nil). Failures count only where
// the limiter is in use: a strategy is judged on its own failures.
func (s StrategySummary) Misses() []string {
	var m []string
	chk := func(ok bool, format string, a ...any) {
		if !ok {
			m = append(m, fmt.Sprintf(format, a...))
		}
	}
	chk(s.Errors == 0, "%d scenarios did not finish", s.Errors)
	chk(s.Wall.Worst <= Goals.WallWorst, "worst wall÷ideal %.3f > %.2f", s.Wall.Worst, Goals.WallWorst)
	chk(s.Wall.P95 <= Goals.WallP95, "p95 wall÷ideal %.3f > %.2f", s.Wall.P95, Goals.WallP95)
	chk(s.Wall.Median <= Goals.WallMedian, "median wall÷ideal %.3f > %.2f", s.Wall.Median, Goals.WallMedian)
	chk(s.AfterWave.Median <= Goals.AttemptsMedian, "median 1 + throttles/write (beyond the first wave) %.3f > %.2f", s.AfterWave.Median, Goals.AttemptsMedian)
	chk(s.AfterWave.Worst <= Goals.AttemptsWorst, "worst 1 + throttles/write (beyond the first wave) %.3f > %.2f", s.AfterWave.Worst, Goals.AttemptsWorst)
	chk(math.IsNaN(s.Jain.Worst) || s.Jain.Worst >= Goals.Jain, "worst Jain index (all clients busy) %.3f < %.2f", s.Jain.Worst, Goals.Jain)
	chk(math.IsNaN(s.JainSteady.Worst) || s.JainSteady.Worst >= Goals.Jain, "worst Jain index in steady state %.3f < %.2f", s.JainSteady.Worst, Goals.Jain)
	chk(s.Failures == 0, "%d writes failed in %d scenarios", s.Failures, s.FailedScenarios)
	return m
}

// WriteMatrix writes the summary table.
func WriteMatrix(w io.Writer, sums []StrategySummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\twall÷ideal median\tp95\tworst\tattempts/write median\tworst\t1+throttles/write median\tworst\tJain worst\tp5\tsteady worst\tp5\trecover ×4 p95\tworst\trecover ×¼ p95\tworst\tfailures\t")
	sec := func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return (time.Duration(v * float64(time.Second))).Round(10 * time.Millisecond).String()
	}
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", s.Name,
			fmtF(s.Wall.Median), fmtF(s.Wall.P95), fmtF(s.Wall.Worst), fmtF(s.Attempts.Median), fmtF(s.Attempts.Worst), fmtF(s.AfterWave.Median), fmtF(s.AfterWave.Worst),
			fmtF(s.Jain.Worst), fmtF(s.Jain.P95), fmtF(s.JainSteady.Worst), fmtF(s.JainSteady.P95), sec(s.RecoverUp.P95), sec(s.RecoverUp.Worst), sec(s.RecoverDown.P95), sec(s.RecoverDown.Worst), s.Failures)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(sums) > 0 {
		_, err := fmt.Fprintf(w, "\nJain's index: measured in %d scenarios for %s (K ≥ 2, all clients busy ≥ 2 s from 1 s after the last start, each one's fair share ≥ %d answers); in steady state (from %v after the last start, capacity step, end of background load or of an outage) in %d\n", sums[0].Jain.N, sums[0].Name, JainMinAnswers, SettleTime, sums[0].JainSteady.N)
		return err
	}
	return nil
}

// MatrixStrategies are the strategies the matrix compares: the recommended
// setup, plain full-jitter backoff (the baseline that never stalls) and the
// AWS SDK's adaptive mode.
func MatrixStrategies() []Strategy {
	all := Strategies()
	pick := func(name string) Strategy {
		for _, s := range all {
			if s.Name == name {
				return s
			}
		}
		panic("sim: no strategy " + name)
	}
	return []Strategy{pick("recommended"), pick("full jitter"), pick("adaptive (AWS CUBIC)")}
}

// WriteWorst writes the n scenarios where strategy i did worst (by wall ÷
// ideal), with strategy base's result beside each.
func WriteWorst(w io.Writer, rows []MatrixRow, strategies []Strategy, i, base, n int) {
	idx := make([]int, len(rows))
	for k := range idx {
		idx[k] = k
	}
	ratio := func(k int) float64 {
		if rows[k].Errs[i] != nil {
			return math.Inf(1)
		}
		return rows[k].Results[i].WallRatio()
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch ra, rb := ratio(a), ratio(b); {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		}
		return 0
	})
	for _, k := range idx[:min(n, len(idx))] {
		r := rows[k]
		a, b := r.Results[i], r.Results[base]
		fmt.Fprintf(w, "  %.3f× ideal, %.2f attempts/write, Jain %s (%s: %.3f×, %.2f) — %v\n", a.WallRatio(), a.AttemptsPerItem(), fmtJain(a.Jain), strategies[base].Name, b.WallRatio(), b.AttemptsPerItem(), r.Scenario)
	}
}

// Losses counts the scenarios where strategy i took more than 5 % longer
// than strategy base while failing no fewer writes (a baseline that gave
// up on writes finished early by not doing them).
func Losses(rows []MatrixRow, i, base int) int {
	n := 0
	for _, r := range rows {
		if r.Errs[i] != nil || r.Errs[base] != nil {
			continue
		}
		a, b := r.Results[i], r.Results[base]
		if a.WallRatio() > 1.05*b.WallRatio() && a.Failures >= b.Failures {
			n++
		}
	}
	return n
}

func fmtJain(j float64) string {
	if math.IsNaN(j) {
		return "—"
	}
	return fmt.Sprintf("%.3f", j)
}

// ServiceClass names the kind of service and share a scenario gives each
// client, the split that explains most of the matrix's tail.
type ServiceClass int

// Service classes, by the service's bucket at its base capacity and the
// capacity per client.
const (
	NoBurst     ServiceClass = iota // bucket under 3 tokens
	SmallBurst                      // bucket 3–10 tokens
	SmallShares                     // bucket ≥ 10 tokens, under 10 writes/s per client
	Ordinary                        // bucket ≥ 10 tokens, ≥ 10 writes/s per client
	nServiceClasses
)

func (c ServiceClass) String() string {
	if c < 0 || c >= nServiceClasses {
		return fmt.Sprintf("ServiceClass(%d)", int(c))
	}
	return [...]string{"bucket < 3 tokens", "bucket 3–10 tokens", "bucket ≥ 10, < 10/s per client", "bucket ≥ 10, ≥ 10/s per client"}[c]
}

// Class returns the scenario's service class.
func (s *Scenario) Class() ServiceClass {
	switch bucket := s.Burst * s.Capacity; {
	case bucket < 3:
		return NoBurst
	case bucket < 10:
		return SmallBurst
	case s.Capacity/float64(len(s.Clients)) < 10:
		return SmallShares
	}
	return Ordinary
}

// WriteClasses writes, per service class, the distribution of wall ÷ ideal
// and of 1 + throttles per write for strategy i beside strategy base, its
// failures and its losses against base.
func WriteClasses(w io.Writer, rows []MatrixRow, strategies []Strategy, i, base int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "service class\tscenarios\tstrategy\twall÷ideal median\tp95\tworst\t1+throttles/write median\tp95\tworst\tfailures\tlosses\t\n")
	for c := range nServiceClasses {
		var sel []MatrixRow
		for _, r := range rows {
			if r.Scenario.Class() == c {
				sel = append(sel, r)
			}
		}
		for j, k := range []int{i, base} {
			var wall, thr []float64
			fails := 0
			for _, r := range sel {
				if r.Errs[k] != nil {
					wall = append(wall, math.Inf(1))
					continue
				}
				wall = append(wall, r.Results[k].WallRatio())
				thr = append(thr, r.Results[k].ThrottleCost())
				fails += r.Results[k].Failures
			}
			wd, td := dist(wall, true), dist(thr, true)
			name, n, loss := "", "", ""
			if j == 0 {
				name, n, loss = c.String(), fmt.Sprint(len(sel)), fmt.Sprint(Losses(sel, i, base))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", name, n, strategies[k].Name,
				fmtF(wd.Median), fmtF(wd.P95), fmtF(wd.Worst), fmtF(td.Median), fmtF(td.P95), fmtF(td.Worst), fails, loss)
		}
	}
	return tw.Flush()
}

func fmtF(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.3f", v)
}
