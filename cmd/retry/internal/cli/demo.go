package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"gonum.org/v1/plot/plotter"

	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/internal/sim"
	"github.com/jittered/retry/retrytest"
)

const demoUsage = `Usage: retry demo [flags]

Starts a throttled service on 127.0.0.1 (R writes/s, DynamoDB-shaped
throttles: HTTP 400 ProvisionedThroughputExceededException), then has C
writers push N items to it over real HTTP with each retry strategy in turn:
the naive loop (2ⁿ, no jitter), full jitter, decorrelated jitter, full jitter
with the AWS retry budget, the AWS SDK's adaptive mode (CUBIC) and the
recommended setup. Prints a table and writes a chart of accepted and
throttled requests per 100 ms, one panel per strategy.

Examples:
  retry demo
  retry demo --clients 1000 --items 10000 --out docs/demo
  retry demo --strategies "full jitter,recommended"

Flags:
`

func demo(ctx context.Context, args []string, std IO) error {
	fs := newFlags("demo", demoUsage, std)
	rate := fs.Float64("rate", 1000, "service capacity, writes/s (R)")
	burst := fs.Int("burst", 100, "service burst")
	clients := fs.Int("clients", 200, "concurrent writers (C)")
	items := fs.Int("items", 5000, "items to write per strategy (N)")
	names := fs.String("strategies", "", "comma-separated strategies (default: all)")
	out := fs.String("out", "", "write the chart to this path + .png and .svg (the directory must exist); default: none")
	progress := fs.String("progress", "auto", "progress: auto (bars on a terminal, else a line every few seconds), always (bars), lines or never")
	every := durationFlag(fs, "progress-every", 5*time.Second, "how often --progress lines prints a line")
	chart := chartFlag(fs)
	metricsAddr := fs.String("metrics", "", "serve the retry metrics (OpenTelemetry, Prometheus text format) at http://`ADDR`/metrics while the demo runs, e.g. 127.0.0.1:9464; default: none")
	latency := durationFlag(fs, "latency", time.Millisecond, "service time of each request")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := checkOut("demo", *out); err != nil {
		return err
	}
	if !(*rate > 0) || *burst < 1 || *clients < 1 || *items < 1 {
		return usagef("demo: need --rate > 0, --burst ≥ 1, --clients ≥ 1 and --items ≥ 1")
	}
	strategies, err := pickStrategies(*names)
	if err != nil {
		return err
	}
	show := *progress == "always" || (*progress == "auto" && isTerminal(std.Stderr))
	lines := *progress == "lines" || (*progress == "auto" && !isTerminal(std.Stderr))
	if *progress != "auto" && *progress != "always" && *progress != "lines" && *progress != "never" {
		return usagef("demo: --progress %q: must be auto, always, lines or never", *progress)
	}
	if *every <= 0 {
		return usagef("demo: --progress-every %v: must be > 0", *every)
	}
	if err := checkChart("demo", *chart); err != nil {
		return err
	}

	var metrics *metricsEndpoint
	if *metricsAddr != "" {
		if metrics, err = startMetrics(*metricsAddr); err != nil {
			return usagef("demo: %v", err)
		}
		defer metrics.Close()
		fmt.Fprintf(std.Stdout, "Metrics: %s (retry.operation = the strategy)\n", metrics.URL)
	}
	fmt.Fprintf(std.Stdout, "Service: %.0f writes/s, burst %d, DynamoDB-shaped throttles; %d writers × %d items per strategy (ideal %v)\n\n",
		*rate, *burst, *clients, *items, time.Duration(float64(*items) / *rate * float64(time.Second)))
	var bars *mpb.Progress
	if show {
		bars = mpb.NewWithContext(ctx, mpb.WithOutput(std.Stderr), mpb.WithWidth(40))
	}
	type result struct {
		name string
		res  retrytest.LoadResult
		cnt  retrytest.Counters
	}
	var results []result
	interrupted := false
	for _, s := range strategies {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		srv, err := retrytest.Start(retrytest.Config{Rate: *rate, Burst: *burst, Shape: retrytest.DynamoDB, Latency: *latency})
		if err != nil {
			return err
		}
		var bar *mpb.Bar
		if bars != nil {
			bar = bars.New(int64(*items), mpb.BarStyle(),
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-22s", s.Name))),
				mpb.AppendDecorators(decor.CountersNoUnit("%d/%d"), decor.Name(" "), decor.Elapsed(decor.ET_STYLE_GO)))
		}
		var done atomic.Int64
		stopLines := func() {}
		if lines {
			stopLines = progressLines(std.Stderr, s.Name, *items, &done, *every)
		}
		policy := s.New(1)
		if metrics != nil {
			if err := metrics.observe(policy, s.Name); err != nil {
				return err
			}
		}
		res, err := retrytest.RunLoad(ctx, retrytest.LoadConfig{
			URL: srv.URL, Clients: *clients, Items: *items, Method: http.MethodPost, Timeout: 10 * time.Minute,
			NewTransport: func(next http.RoundTripper) http.RoundTripper {
				return &httpretry.Transport{Next: next, Policy: policy, Classify: httpretry.AWSThrottle, RetryNonIdempotent: true}
			},
			Progress: func(int, int) {
				done.Add(1)
				if bar != nil {
					bar.Increment()
				}
			},
		})
		stopLines()
		cnt := srv.Counters()
		srv.Close()
		if bar != nil {
			bar.SetTotal(int64(*items), true)
		}
		if ctx.Err() != nil {
			interrupted = true // this strategy's partial run is left out
			break
		}
		if err != nil {
			return err
		}
		results = append(results, result{s.Name, res, cnt})
	}
	if bars != nil {
		bars.Wait()
	}

	ideal := float64(*items) / *rate
	tw := tabwriter.NewWriter(std.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\twall ÷ ideal\tattempts ÷ items\tthrottles\tp50\tp99\tfailures\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%d\t%v\t%v\t%d\t\n", r.name, r.res.Wall.Seconds()/ideal,
			float64(r.res.Attempts)/float64(*items), r.cnt.Total.Throttled,
			r.res.P50.Round(time.Millisecond), r.res.P99.Round(time.Millisecond), r.res.Failures)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if interrupted {
		// Stopped by a signal: what was measured is printed, no chart.
		fmt.Fprintf(std.Stdout, "interrupted after %d of %d strategies\n", len(results), len(strategies))
		return context.Cause(ctx)
	}
	var panels []panel
	for _, r := range results {
		var acc, thr plotter.XYs
		for i, b := range r.cnt.Buckets {
			x := float64(r.cnt.First+i) / 10
			acc = append(acc, plotter.XY{X: x, Y: float64(b.Accepted)})
			thr = append(thr, plotter.XY{X: x, Y: float64(b.Throttled)})
		}
		panels = append(panels, panel{Title: r.name, X: "time (s)", Y: "requests / 100 ms",
			Lines: []series{{Name: "accepted", XY: acc}, {Name: "throttled", XY: thr}}})
	}
	if err := showChart(std.Stdout, *chart, panels); err != nil {
		return err
	}
	fmt.Fprintln(std.Stdout)
	return chartOut(std.Stdout, *out, panels)
}

func pickStrategies(names string) ([]sim.Strategy, error) {
	all := sim.Strategies()
	if names == "" {
		return all, nil
	}
	var out []sim.Strategy
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		found := false
		for _, s := range all {
			if strings.EqualFold(s.Name, n) || strings.HasPrefix(strings.ToLower(s.Name), strings.ToLower(n)) && n != "" {
				out, found = append(out, s), true
				break
			}
		}
		if !found {
			var known []string
			for _, s := range all {
				known = append(known, s.Name)
			}
			return nil, usagef("demo: --strategies: unknown strategy %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	return out, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLines prints "retry: NAME: done/total (p%), elapsed" to w every every,
// for output that is not a terminal (a CI log, a pipe), until the returned
// func is called; that call prints the final line.
func progressLines(w io.Writer, name string, total int, done *atomic.Int64, every time.Duration) (stop func()) {
	start := time.Now()
	line := func() {
		n := done.Load()
		fmt.Fprintf(w, "retry: %s: %d/%d (%d%%), %v\n", name, n, total, n*100/int64(max(total, 1)), time.Since(start).Round(100*time.Millisecond))
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				line()
			case <-quit:
				line()
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
