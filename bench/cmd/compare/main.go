// Command compare runs the load benchmark of every library against a
// retrytest service and writes bench/RESULTS.md and a chart:
//
//	cd bench && go run ./cmd/compare -micro micro-stat.txt
//
// (bench/run.sh runs the micro benchmarks, benchstat and this.) Every run
// is bounded in time; repetitions are interleaved and medians reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/jittered/retry/bench"
	"github.com/jittered/retry/retrytest"
)

type key struct {
	variant string
	clients int
	lib     string
}

type run struct {
	res       retrytest.LoadResult
	throttled int
	err       error
	buckets   []retrytest.Counts
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context) error {
	reps := flag.Int("reps", 3, "interleaved repetitions (medians are reported)")
	items := flag.Int("items", 10000, "items per run (N)")
	rate := flag.Float64("rate", 1000, "service capacity, writes/s (R)")
	clientsFlag := flag.String("clients", "200,1000", "client counts (C)")
	variantsFlag := flag.String("variants", "dynamodb,429", "service answers: dynamodb (400 throttles) and/or 429 (with Retry-After: 1)")
	libsFlag := flag.String("libs", "", "only these libraries (comma-separated substrings)")
	timeout := flag.Duration("timeout", 3*time.Minute, "bound on each run")
	out := flag.String("out", "RESULTS.md", "results file")
	chart := flag.String("chart", "results.png", "chart file (accepted and throttled per 100 ms, dynamodb variant, the largest C, first repetition)")
	micro := flag.String("micro", "", "benchstat output of the micro benchmarks to include")
	flag.Parse()
	notes, err := os.ReadFile(notesFile)
	if err != nil {
		return fmt.Errorf("the hand-written notes RESULTS.md embeds: %w", err)
	}

	var clients []int
	for _, s := range strings.Split(*clientsFlag, ",") {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			return fmt.Errorf("-clients %q: want positive integers", *clientsFlag)
		}
		clients = append(clients, n)
	}
	variants := strings.Split(*variantsFlag, ",")
	var targets []bench.Target
	for _, t := range bench.Targets() {
		if *libsFlag == "" || slices.ContainsFunc(strings.Split(*libsFlag, ","), func(s string) bool { return strings.Contains(t.Name, s) }) {
			targets = append(targets, t)
		}
	}
	runs := map[key][]run{}
	total := *reps * len(variants) * len(clients) * len(targets)
	n := 0
	began := time.Now()
	for rep := range *reps {
		for _, v := range variants {
			cfg := retrytest.Config{Rate: *rate, Burst: 100, Latency: time.Millisecond}
			switch v {
			case "dynamodb":
				cfg.Shape = retrytest.DynamoDB
			case "429":
				cfg.Shape, cfg.RetryAfter = retrytest.TooManyRequests, time.Second
			default:
				return fmt.Errorf("-variants: unknown %q", v)
			}
			for _, c := range clients {
				for _, t := range targets {
					if err := ctx.Err(); err != nil {
						return err
					}
					n++
					srv, err := retrytest.Start(cfg)
					if err != nil {
						return err
					}
					res, rerr := bench.RunLoad(ctx, t, srv.URL, c, *items, bench.Shared, *timeout)
					srv.Close()
					cnt := srv.Counters()
					runs[key{v, c, t.Name}] = append(runs[key{v, c, t.Name}], run{res, cnt.Total.Throttled, rerr, cnt.Buckets})
					ideal := float64(*items) / *rate
					fmt.Fprintf(os.Stderr, "[%d/%d %v] rep %d %s C=%d %-28s wall/ideal %.3f attempts/N %.2f failures %d goroutines left %d %v\n",
						n, total, time.Since(began).Round(time.Second), rep+1, v, c, t.Name, res.Wall.Seconds()/ideal,
						float64(res.Attempts)/float64(*items), res.Failures, res.GoroutinesLeft, errText(rerr))
				}
			}
		}
	}

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	writeResults(f, targets, variants, clients, runs, *items, *rate, *reps, *micro, *chart, string(notes))
	if *chart != "" {
		if err := writeChart(*chart, targets, variants[0], clients[len(clients)-1], runs); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s in %v\n", *out, *chart, time.Since(began).Round(time.Second))
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

func median[T any](rs []run, f func(run) T, less func(a, b T) int) T {
	vs := make([]T, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.SortFunc(vs, less)
	return vs[len(vs)/2]
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpD(a, b time.Duration) int { return cmpF(float64(a), float64(b)) }
func cmpI(a, b int) int           { return a - b }

func writeResults(w io.Writer, targets []bench.Target, variants []string, clients []int, runs map[key][]run, items int, rate float64, reps int, micro, chart, notes string) {
	ideal := float64(items) / rate
	fmt.Fprintf(w, "# Side-by-side: jittered/retry and the Go retry libraries\n\n")
	fmt.Fprintf(w, "Generated by `cd bench && ./run.sh` (micro: `go test -bench 'Success|ThreeFailures|HTTPSuccess' -benchmem -count 10` + benchstat; load: `go run ./cmd/compare`) on %s, %s. All figures of one table come from the same run; the machine (2 shared cores) is noisy, so compare within a table.\n\n", time.Now().UTC().Format("2006-01-02"), goVersion())
	fmt.Fprintf(w, "Shared settings: base %v, cap %v, %d attempts in all; everything else is each library's default (see Configurations).\n\n", bench.Shared.Base, bench.Shared.Cap, bench.Shared.Attempts)
	if micro != "" {
		if b, err := os.ReadFile(micro); err == nil {
			fmt.Fprintf(w, "## Micro: the retry loop itself\n\nFirst-try success, and three failures with zero delay then success (`BenchmarkSuccess`, `BenchmarkThreeFailures`; the op's own closure costs the 2 allocs every library shows there); `BenchmarkHTTPSuccess` adds one GET through each HTTP client over an in-memory transport.\n\n```\n%s```\n\n", b)
		}
	}
	fmt.Fprintf(w, "## Load: %d items, R = %.0f writes/s (burst 100), 1 ms per request\n\n", items, rate)
	fmt.Fprintf(w, "C writers, each writing one item at a time over real HTTP to a retrytest service on 127.0.0.1; ideal time N/R = %.0f s. Medians of %d interleaved repetitions. *Goroutines left*: goroutines still running after the run, once idle connections are closed.\n\n", ideal, reps)
	for _, v := range variants {
		what := "DynamoDB-shaped throttles (HTTP 400 ProvisionedThroughputExceededException)"
		if v == "429" {
			what = "HTTP 429 with Retry-After: 1"
		}
		for _, c := range clients {
			fmt.Fprintf(w, "### %s, C = %d\n\n", what, c)
			fmt.Fprintln(w, "| library | wall ÷ ideal | attempts ÷ N | throttled | failures | p50 | p99 | goroutines left |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
			for _, t := range targets {
				rs := runs[key{v, c, t.Name}]
				if len(rs) == 0 {
					continue
				}
				name := t.Name
				if name == "jittered/retry" {
					name = "**jittered/retry**"
				}
				fmt.Fprintf(w, "| %s | %.3f | %.2f | %d | %d | %v | %v | %d |\n", name,
					median(rs, func(r run) float64 { return r.res.Wall.Seconds() / ideal }, cmpF),
					median(rs, func(r run) float64 { return float64(r.res.Attempts) / float64(items) }, cmpF),
					median(rs, func(r run) int { return r.throttled }, cmpI),
					median(rs, func(r run) int { return r.res.Failures }, cmpI),
					median(rs, func(r run) time.Duration { return r.res.P50 }, cmpD).Round(time.Millisecond),
					median(rs, func(r run) time.Duration { return r.res.P99 }, cmpD).Round(time.Millisecond),
					median(rs, func(r run) int { return r.res.GoroutinesLeft }, cmpI))
			}
			fmt.Fprintln(w)
		}
	}
	if chart != "" {
		fmt.Fprintf(w, "![accepted and throttled requests per 100 ms per library](%s)\n\n", chart)
	}
	writeGoals(w, variants, clients, runs, items, rate, micro)
	fmt.Fprintf(w, "## Notes (hand-written, from bench/%s; not regenerated)\n\n%s\n\n", notesFile, strings.TrimSpace(notes))
	fmt.Fprintf(w, "## Configurations\n\n")
	for _, t := range targets {
		fmt.Fprintf(w, "- **%s**: %s\n", t.Name, t.Config)
	}
	fmt.Fprintln(w)
}

func goVersion() string { return "Go " + strings.TrimPrefix(runtime.Version(), "go") }

func writeChart(path string, targets []bench.Target, variant string, clients int, runs map[key][]run) error {
	var plots [][]*plot.Plot
	for _, t := range targets {
		rs := runs[key{variant, clients, t.Name}]
		if len(rs) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (C = %d)", t.Name, clients)
		p.X.Label.Text, p.Y.Label.Text = "time (s)", "per 100 ms"
		p.Legend.Top = true
		var acc, thr plotter.XYs
		for i, b := range rs[0].buckets {
			acc = append(acc, plotter.XY{X: float64(i) / 10, Y: float64(b.Accepted)})
			thr = append(thr, plotter.XY{X: float64(i) / 10, Y: float64(b.Throttled)})
		}
		for _, s := range []struct {
			name string
			xy   plotter.XYs
			c    color.Color
		}{{"accepted", acc, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}}, {"throttled", thr, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}} {
			if len(s.xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(s.xy)
			if err != nil {
				return err
			}
			l.Color = s.c
			p.Add(l)
			p.Legend.Add(s.name, l)
		}
		plots = append(plots, []*plot.Plot{p})
	}
	if len(plots) == 0 {
		return nil
	}
	img := vgimg.New(vg.Points(720), vg.Points(float64(170*len(plots))))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	for i, c := range plot.Align(plots, tiles, dc) {
		plots[i][0].Draw(c[0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// notesFile holds the hand-written reading of the results: RESULTS.md
// embeds it under a heading that says so, so that everything else in
// RESULTS.md is what this command measured.
const notesFile = "RESULTS-notes.md"

// writeGoals checks the goals of the comparison against this run's figures.
func writeGoals(w io.Writer, variants []string, clients []int, runs map[key][]run, items int, rate float64, micro string) {
	ideal := float64(items) / rate
	fmt.Fprintf(w, "## Goals\n\n")
	if b, err := os.ReadFile(micro); err == nil {
		ns := map[string]float64{}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[0], "Success/") {
				continue
			}
			x, ok := nanoseconds(f[1])
			if !ok {
				continue
			}
			name := strings.TrimSuffix(strings.TrimPrefix(f[0], "Success/"), "-2")
			if _, seen := ns[name]; !seen {
				ns[name] = x
			}
		}
		ours, fastest, fname := ns["jittered/retry"], 0.0, ""
		for n, x := range ns {
			if n != "jittered/retry" && n != "naive_loop" && (fastest == 0 || x < fastest) {
				fastest, fname = x, n
			}
		}
		if ours > 0 && fastest > 0 {
			mark := "met"
			if fastest/ours < 5 {
				mark = "missed"
			}
			fmt.Fprintf(w, "- Success path: %.1f ns, 0 allocs; the fastest peer (%s) takes %.1f ns: %.1f× (goal ≥ 5×: %s). The naive loop is the baseline, not a peer: it is a bare call.\n", ours, fname, fastest, fastest/ours, mark)
		}
	}
	for _, v := range variants {
		for _, c := range clients {
			rs := runs[key{v, c, "jittered/retry"}]
			if len(rs) == 0 {
				continue
			}
			wall := median(rs, func(r run) float64 { return r.res.Wall.Seconds() / ideal }, cmpF)
			att := median(rs, func(r run) float64 { return float64(r.res.Attempts) / float64(items) }, cmpF)
			fails := median(rs, func(r run) int { return r.res.Failures }, cmpI)
			left := median(rs, func(r run) int { return r.res.GoroutinesLeft }, cmpI)
			mark := "met"
			if wall > 1.05 || att > 1.2 || fails != 0 || left != 0 {
				mark = "missed"
			}
			fmt.Fprintf(w, "- Load, %s, C = %d: wall ÷ ideal %.3f, attempts ÷ N %.2f, %d failures, %d goroutines left (goal ≤ 1.05, ≤ 1.2, 0, 0: %s).\n", v, c, wall, att, fails, left, mark)
		}
	}
	fmt.Fprintln(w)
}

// nanoseconds reads a benchstat duration such as "17.45n", "1.345µ" or "2m".
func nanoseconds(v string) (float64, bool) {
	scale := 1.0
	for suffix, m := range map[string]float64{"n": 1, "µ": 1e3, "m": 1e6} {
		if strings.HasSuffix(v, suffix) {
			v, scale = strings.TrimSuffix(v, suffix), m
			break
		}
	}
	var x float64
	if _, err := fmt.Sscan(v, &x); err != nil {
		return 0, false
	}
	return x * scale, true
}
