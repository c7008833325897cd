package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/jittered/retry"
	"github.com/jittered/retry/internal/sim"
)

const simUsage = `Usage: retry sim brooker|throttle|matrix [flags]

Virtual-time simulations, deterministic for a --seed. Each prints a table
and writes a chart (PNG and SVG).

  brooker   the model of the AWS Architecture Blog post "Exponential Backoff
            And Jitter" (2015): clients racing to update one versioned row;
            write calls and completion time against the number of clients,
            for no backoff, exponential, full, equal and decorrelated
            jitter, plus full jitter with a retry budget.
  throttle  C writers pushing N items to a service of R writes/s: wall time
            and attempts for the naive loop, jittered backoff, a budget, the
            AWS SDK's adaptive mode and the recommended setup.

  matrix    the adaptive limiter's judge: hundreds of randomized scenarios
            (capacity 5–50,000/s, 1–2000 writers, 1–16 independent
            clients, saturated starts, ×¼ and ×4 steps, outages, hints,
            transient errors), each run with the recommended setup and full
            jitter (--cubic adds the AWS SDK's adaptive mode; --limiter
            tries other limiter settings); prints the distribution
            of wall ÷ ideal, attempts per write, fairness and recovery, the
            goals missed and the worst scenarios.

Examples:
  retry sim brooker --trials 100 --out docs/brooker
  retry sim matrix --scenarios 500 --out docs/matrix
  retry sim matrix --limiter fairness=0.3,headroom=0.05
  retry sim throttle --clients 200,1000 --items 10000 --rate 1000

Flags:
`

func simCmd(ctx context.Context, args []string, std IO) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			// Each simulation has its own flags: name them instead of an
			// empty "Flags:" section.
			fmt.Fprint(std.Stdout, strings.TrimSuffix(simUsage, "Flags:\n"))
			fmt.Fprintln(std.Stdout, "Flags: each simulation has its own; see retry sim brooker|throttle|matrix -h")
			return nil
		}
		return usagef("sim: name a simulation: brooker, throttle or matrix")
	}
	switch args[0] {
	case "brooker":
		return simBrooker(ctx, args[1:], std)
	case "throttle":
		return simThrottle(ctx, args[1:], std)
	case "matrix":
		return simMatrix(ctx, args[1:], std)
	}
	return usagef("sim: unknown simulation %q (want brooker, throttle or matrix)", args[0])
}

func simBrooker(ctx context.Context, args []string, std IO) error {
	fs := newFlags("sim brooker", simUsage, std)
	minC := fs.Int("min-clients", 10, "fewest clients")
	maxC := fs.Int("max-clients", 190, "most clients")
	step := fs.Int("step", 10, "clients step")
	trials := fs.Int("trials", 100, "runs averaged per point (100 in the post)")
	seed := fs.Uint64("seed", 1, "seed")
	base := durationFlag(fs, "base", 5*time.Millisecond, "base delay (5ms in the post)")
	limit := durationFlag(fs, "cap", 2*time.Second, "cap (2s in the post)")
	out := fs.String("out", "", "write the chart to this path + .png and .svg (the directory must exist); default: none")
	chart := chartFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := checkOut("sim brooker", *out); err != nil {
		return err
	}
	if err := checkChart("sim brooker", *chart); err != nil {
		return err
	}
	if *minC < 1 || *maxC < *minC || *step < 1 || *trials < 1 {
		return usagef("sim brooker: need 1 ≤ --min-clients ≤ --max-clients, --step ≥ 1 and --trials ≥ 1")
	}
	if *base <= 0 || *limit < *base {
		return usagef("sim brooker: need 0 < --base ≤ --cap")
	}
	strategies := sim.BrookerStrategies(*base, *limit)
	calls := make([]series, len(strategies))
	times := make([]series, len(strategies))
	tw := tabwriter.NewWriter(std.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "clients\t")
	for _, s := range strategies {
		fmt.Fprintf(tw, "%s calls\t%s time\t", s.Name, s.Name)
	}
	fmt.Fprintln(tw)
	// The table is printed at the end (aligned): without a terminal, a
	// progress line every 5 s on stderr meanwhile.
	var done atomic.Int64
	if !isTerminal(std.Stderr) {
		stop := progressLines(std.Stderr, "brooker client counts", (*maxC-*minC) / *step + 1, &done, 5*time.Second)
		defer stop()
	}
	for c := *minC; c <= *maxC; c, _ = c+*step, done.Add(1) {
		if ctx.Err() != nil {
			// Interrupted: the rows so far are printed, no chart.
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(std.Stdout, "interrupted at %d clients\n", c)
			return context.Cause(ctx)
		}
		fmt.Fprintf(tw, "%d\t", c)
		for i, s := range strategies {
			r, err := sim.Brooker(sim.BrookerConfig{Clients: c, Trials: *trials, Base: *base, Cap: *limit, Seed: *seed, Ctx: ctx}, s)
			if err != nil {
				if ctx.Err() != nil {
					// Interrupted mid-row: the finished rows are printed.
					fmt.Fprintln(tw)
					if ferr := tw.Flush(); ferr != nil {
						return ferr
					}
					fmt.Fprintf(std.Stdout, "interrupted at %d clients\n", c)
				}
				return err
			}
			fmt.Fprintf(tw, "%.0f\t%v\t", r.Calls, r.Time.Round(time.Millisecond))
			calls[i].Name, times[i].Name = s.Name, s.Name
			calls[i].XY = append(calls[i].XY, plotter.XY{X: float64(c), Y: r.Calls})
			times[i].XY = append(times[i].XY, plotter.XY{X: float64(c), Y: r.Time.Seconds() * 1000})
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	panels := []panel{
		{Title: "Work: write calls (mean of runs)", X: "clients", Y: "calls", Lines: calls},
		{Title: "Completion time (mean of runs)", X: "clients", Y: "time (ms)", Lines: times},
	}
	if err := showChart(std.Stdout, *chart, panels); err != nil {
		return err
	}
	return chartOut(std.Stdout, *out, panels)
}

func chartOut(w io.Writer, out string, panels []panel) error {
	if out == "" {
		return nil
	}
	paths, err := writeChart(out, panels, vg.Points(720))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "chart: %s\n", strings.Join(paths, ", "))
	return nil
}

func simThrottle(ctx context.Context, args []string, std IO) error {
	fs := newFlags("sim throttle", simUsage, std)
	clients := fs.String("clients", "200,1000", "client counts, comma-separated")
	items := fs.Int("items", 10000, "items to write (N)")
	rate := fs.Float64("rate", 1000, "service capacity, writes/s (R)")
	burst := fs.Float64("burst", 100, "service burst")
	seed := fs.Uint64("seed", 1, "seed")
	out := fs.String("out", "", "write the chart to this path + .png and .svg (the directory must exist); default: none")
	chart := chartFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := checkOut("sim throttle", *out); err != nil {
		return err
	}
	if err := checkChart("sim throttle", *chart); err != nil {
		return err
	}
	cs, err := intList(*clients)
	if err != nil {
		return usagef("sim throttle: --clients %q: %v", *clients, err)
	}
	if *items < 1 || !(*rate > 0) || *burst < 0 {
		return usagef("sim throttle: need --items ≥ 1, --rate > 0 and --burst ≥ 0")
	}
	rows, err := sim.CompareContext(ctx, sim.Strategies(), cs, *items, *rate, *burst, *seed)
	if err != nil && ctx.Err() == nil {
		return err
	}
	if err := sim.WriteText(std.Stdout, rows); err != nil {
		return err
	}
	if ctx.Err() != nil {
		// Stopped by a signal: what was measured is printed, no chart.
		fmt.Fprintf(std.Stdout, "interrupted after %d of %d runs\n", len(rows), len(cs)*len(sim.Strategies()))
		return context.Cause(ctx)
	}
	var panels []panel
	for _, c := range cs {
		pn := panel{Title: fmt.Sprintf("Accepted writes per 100 ms, C = %d (capacity %.0f)", c, *rate/10), X: "time (s)", Y: "accepted / 100 ms"}
		for _, r := range rows {
			if r.Clients != c {
				continue
			}
			var xy plotter.XYs
			for i, n := range r.Result.Accepted {
				xy = append(xy, plotter.XY{X: float64(i) / 10, Y: float64(n)})
			}
			pn.Lines = append(pn.Lines, series{Name: r.Strategy, XY: xy})
		}
		panels = append(panels, pn)
	}
	if err := showChart(std.Stdout, *chart, panels); err != nil {
		return err
	}
	return chartOut(std.Stdout, *out, panels)
}

func intList(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(p), "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func simMatrix(ctx context.Context, args []string, std IO) error {
	fs := newFlags("sim matrix", simUsage, std)
	n := fs.Int("scenarios", 500, "randomized scenarios to run")
	seed := fs.Uint64("seed", 1, "first scenario seed (scenario i has seed+i)")
	worst := fs.Int("worst", 10, "worst scenarios to list")
	out := fs.String("out", "", "write the chart to this path + .png and .svg (the directory must exist); default: none")
	chart := chartFlag(fs)
	cubic := fs.Bool("cubic", false, "also run the AWS SDK's adaptive mode (slow: its waiters poll)")
	limiter := fs.String("limiter", "", "the recommended setup's Goodput limiter with these settings, as\nname=value,… ("+strings.Join(limiterSettings, ", ")+");\ndefault: the library's defaults")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := parseLimiter(*limiter)
	if err != nil {
		return err
	}
	if err := checkOut("sim matrix", *out); err != nil {
		return err
	}
	if err := checkChart("sim matrix", *chart); err != nil {
		return err
	}
	if *n < 1 || *worst < 0 {
		return usagef("sim matrix: need --scenarios ≥ 1 and --worst ≥ 0")
	}
	strategies := sim.MatrixStrategies()
	if !*cubic {
		strategies = strategies[:2]
	}
	if *limiter != "" {
		strategies[0] = sim.Strategy{Name: "recommended (" + *limiter + ")", New: func(seed uint64) *retry.Policy {
			p := sim.Recommended(seed)
			p.Limiter, _ = retry.NewAdaptiveLimiter(cfg) // validated by parseLimiter
			return p
		}}
	}
	start := time.Now()
	// A line on stderr every 10 s (the matrix takes minutes): the
	// deterministic table stays on stdout.
	var done atomic.Int64
	stop := progressLines(std.Stderr, "matrix scenarios", *n, &done, 10*time.Second)
	rows := sim.RunMatrix(ctx, *seed, *n, strategies, func(int) { done.Add(1) })
	stop()
	sums := sim.Summarize(rows, strategies)
	// The table is deterministic for a seed; the time it took is not, so it
	// goes to stderr (BENCHMARKS.md embeds stdout verbatim and CI compares it).
	fmt.Fprintf(std.Stdout, "%d scenarios (seeds %d–%d)\n\n", len(rows), *seed, *seed+uint64(*n)-1)
	fmt.Fprintf(std.Stderr, "retry sim matrix: %d scenarios in %v\n", len(rows), time.Since(start).Round(time.Second))
	if err := sim.WriteMatrix(std.Stdout, sums); err != nil {
		return err
	}
	fmt.Fprintln(std.Stdout)
	if m := sums[0].Misses(); len(m) > 0 {
		fmt.Fprintf(std.Stdout, "goals missed by %s:\n", sums[0].Name)
		for _, x := range m {
			fmt.Fprintf(std.Stdout, "  - %s\n", x)
		}
	} else {
		fmt.Fprintf(std.Stdout, "%s meets every goal\n", sums[0].Name)
	}
	fmt.Fprintf(std.Stdout, "\nscenarios where %s took > 5%% longer than %s (failing no fewer writes): %d of %d\n",
		sums[0].Name, sums[1].Name, sim.Losses(rows, 0, 1), len(rows))
	fmt.Fprintf(std.Stdout, "\nby service class (the bucket at base capacity; the capacity per client):\n")
	if err := sim.WriteClasses(std.Stdout, rows, strategies, 0, 1); err != nil {
		return err
	}
	if *worst > 0 {
		fmt.Fprintf(std.Stdout, "\nworst %d for %s:\n", *worst, sums[0].Name)
		sim.WriteWorst(std.Stdout, rows, strategies, 0, 1, *worst)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var lines []series
	for i, st := range strategies {
		var v []float64
		for _, r := range rows {
			if r.Errs[i] == nil {
				v = append(v, r.Results[i].WallRatio())
			}
		}
		slices.Sort(v)
		var xy plotter.XYs
		for k, x := range v {
			xy = append(xy, plotter.XY{X: math.Min(x, 3), Y: float64(k+1) / float64(len(rows))})
		}
		lines = append(lines, series{Name: st.Name, XY: xy})
	}
	panels := []panel{{Title: "Wall ÷ ideal over the scenario matrix (CDF; clipped at 3)", X: "wall ÷ ideal", Y: "fraction of scenarios", Lines: lines}}
	if err := showChart(std.Stdout, *chart, panels); err != nil {
		return err
	}
	return chartOut(std.Stdout, *out, panels)
}

// limiterSettings are the names --limiter accepts, in the order its help
// and its errors list them.
var limiterSettings = []string{"headroom", "probe", "fairness", "beta", "burst", "interval", "calm-after"}

// parseLimiter reads --limiter's name=value list into a Goodput
// LimiterConfig (zero fields keep their defaults) and validates it.
func parseLimiter(spec string) (retry.LimiterConfig, error) {
	var c retry.LimiterConfig
	if spec == "" {
		return c, nil
	}
	floats := map[string]*float64{"headroom": &c.Headroom, "probe": &c.Probe, "fairness": &c.Fairness, "beta": &c.Beta, "burst": &c.Burst}
	durations := map[string]*time.Duration{"interval": &c.Interval, "calm-after": &c.CalmAfter}
	for _, kv := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		switch {
		case !ok:
			return c, usagef("sim matrix: --limiter %q: want name=value, got %q", spec, kv)
		case floats[name] != nil:
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return c, usagef("sim matrix: --limiter %s=%q: want a number", name, val)
			}
			*floats[name] = v
		case durations[name] != nil:
			d, err := time.ParseDuration(val)
			if err != nil {
				return c, usagef("sim matrix: --limiter %s=%q: want a duration such as 100ms", name, val)
			}
			*durations[name] = d
		default:
			return c, usagef("sim matrix: --limiter: unknown setting %q (want one of %s)", name, strings.Join(limiterSettings, ", "))
		}
	}
	if err := c.Validate(); err != nil {
		return c, usagef("sim matrix: --limiter: %v", err)
	}
	return c, nil
}
