package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jittered/retry/retrytest"
)

const serveUsage = `Usage: retry serve [flags]

Serves a throttling, fault-injecting HTTP service on 127.0.0.1 until
SIGINT/SIGTERM, standalone (answering 200 {} to what it accepts) or as a
reverse proxy in front of --upstream. Its counters per 100 ms are at
/_retrytest/counters (JSON); with --metrics, its totals by outcome are also
served for Prometheus (retry_serve_requests_total).

Examples:
  retry serve --rate 1000 --burst 100
  retry serve --shape 429 --retry-after 2s --p500 0.05 --reset 0.01
  retry serve --upstream http://127.0.0.1:8000 --rate 500 --partial-batch 0.3

Flags:
`

type outageList []retrytest.Window

func (o *outageList) String() string { return fmt.Sprint(*o) }
func (o *outageList) Set(s string) error {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return fmt.Errorf("%q: want FROM-TO, e.g. 10s-15s", s)
	}
	f, err := time.ParseDuration(from)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	t, err := time.ParseDuration(to)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	*o = append(*o, retrytest.Window{From: f, To: t})
	return nil
}

func serve(ctx context.Context, args []string, std IO) error {
	fs := newFlags("serve", serveUsage, std)
	var c retrytest.Config
	var shape string
	var outages outageList
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:0", "address to listen on (loopback only)")
	fs.Float64Var(&c.Rate, "rate", 0, "capacity, requests/s (0: unlimited)")
	fs.IntVar(&c.Burst, "burst", 0, "capacity burst (0: rate/10)")
	fs.StringVar(&shape, "shape", "dynamodb", "throttle answer: dynamodb, 429 or 503")
	retryAfter := durationFlag(fs, "retry-after", 0, "Retry-After sent with 429/503 (0: none)")
	fs.BoolVar(&c.RetryAfterDate, "retry-after-date", false, "send Retry-After as an HTTP-date")
	amz := durationFlag(fs, "amz-retry-after", 0, "x-amz-retry-after sent with throttles (0: none)")
	fs.Float64Var(&c.P500, "p500", 0, "probability of an injected 500")
	fs.Float64Var(&c.P502, "p502", 0, "probability of an injected 502")
	fs.Float64Var(&c.P503, "p503", 0, "probability of an injected 503")
	fs.Float64Var(&c.P504, "p504", 0, "probability of an injected 504")
	fs.Float64Var(&c.PReset, "reset", 0, "probability of a connection reset before handling")
	fs.Float64Var(&c.PResetAfter, "reset-after", 0, "probability of a reset after handling (a lost response)")
	fs.Float64Var(&c.PartialBatch, "partial-batch", 0, "probability of a partial DynamoDB BatchWriteItem (proxy mode)")
	lat := durationFlag(fs, "latency", 0, "added to every answer")
	jit := durationFlag(fs, "jitter", 0, "random extra latency, uniform in [0, jitter)")
	fs.Var(&outages, "outage", "an outage window FROM-TO after start, e.g. 10s-15s (repeatable)")
	fs.StringVar(&c.Upstream, "upstream", "", "reverse-proxy to this URL")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the fault coin")
	window := durationFlag(fs, "counter-window", 0, "how much of the 100 ms counters to keep (0: 10m; the totals are kept whole)")
	metricsAddr := fs.String("metrics", "", "serve the answers' counts (OpenTelemetry, Prometheus text format) at http://`ADDR`/metrics, e.g. 127.0.0.1:9465; default: none")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var err error
	if c.Shape, err = retrytest.ParseShape(shape); err != nil {
		return usagef("serve: --shape: %v", err)
	}
	c.RetryAfter, c.AmzRetryAfter, c.Latency, c.Jitter, c.Outages, c.CounterWindow = *retryAfter, *amz, *lat, *jit, outages, *window
	srv, err := retrytest.Start(c)
	if err != nil {
		return usagef("serve: %s", cliWords(err))
	}
	if *metricsAddr != "" {
		m, err := startMetrics(*metricsAddr)
		if err == nil {
			err = m.observeServer(srv)
		}
		if err != nil {
			srv.Close()
			return usagef("serve: %v", err)
		}
		defer m.Close()
		fmt.Fprintf(std.Stderr, "retry serve: metrics at %s\n", m.URL)
	}
	fmt.Fprintln(std.Stdout, srv.URL)
	fmt.Fprintf(std.Stderr, "retry serve: listening on %s (counters at %s%s); stop with Ctrl-C\n", srv.URL, srv.URL, retrytest.CountersPath)
	select {
	case <-ctx.Done():
	case s := <-std.Signals:
		fmt.Fprintf(std.Stderr, "retry serve: %v: stopping\n", s)
	}
	err = srv.Close()
	t := srv.Counters().Total
	fmt.Fprintf(std.Stderr, "retry serve: accepted %d, throttled %d, faulted %d, upstream failed %d\n", t.Accepted, t.Throttled, t.Faulted, t.Upstream)
	return err
}

// serveFlags maps retrytest.Config's fields to the flags that set them, so
// that an error names what the operator typed.
var serveFlags = strings.NewReplacer(
	"retrytest: ", "",
	"Config.P500+P502+P503+P504+PReset+PResetAfter", "--p500 + --p502 + --p503 + --p504 + --reset + --reset-after",
	" unless AllowNonLoopback is set", " (retry serve listens on loopback only)",
	"Config.Rate", "--rate", "Config.Burst", "--burst", "Config.Addr", "--addr",
	"Config.Shape", "--shape", "Config.P500", "--p500", "Config.P502", "--p502",
	"Config.P503", "--p503", "Config.P504", "--p504", "Config.PResetAfter", "--reset-after",
	"Config.PReset", "--reset", "Config.PartialBatch", "--partial-batch",
	"needs Upstream", "needs --upstream", "Config.Upstream", "--upstream",
	"Config.RetryAfter", "--retry-after", "Config.AmzRetryAfter", "--amz-retry-after",
	"Config.Latency", "--latency", "Config.Jitter", "--jitter", "Config.Outages", "--outage",
	"Config.CounterWindow", "--counter-window",
	"Config.", "",
)

// cliWords rewrites a retrytest configuration error in the command's terms:
// one line, flags instead of library fields.
func cliWords(err error) string {
	return strings.ReplaceAll(serveFlags.Replace(err.Error()), "\n", "; ")
}

// Type names the value in help ("--outage window").
func (*outageList) Type() string { return "window" }
