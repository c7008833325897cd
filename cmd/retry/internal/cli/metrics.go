package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/jittered/retry"
	"github.com/jittered/retry/otelretry"
	"github.com/jittered/retry/retrytest"
)

// metricsEndpoint serves the retry metrics (otelretry's instruments,
// through the OpenTelemetry SDK and its Prometheus exporter) in the
// Prometheus text format at URL, for an operator to scrape or curl while a
// demo runs.
type metricsEndpoint struct {
	URL  string
	mp   *sdkmetric.MeterProvider
	srv  *http.Server
	regs []metric.Registration
}

// startMetrics listens on addr (host:port; port 0 picks one) and serves
// /metrics until Close.
func startMetrics(addr string) (*metricsEndpoint, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("--metrics: the Prometheus exporter: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m := &metricsEndpoint{
		URL: "http://" + ln.Addr().String() + "/metrics",
		mp:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
	}
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

// observe records p's calls under retry.operation = name, and its budget
// and adaptive limiter, if any, as gauges.
func (m *metricsEndpoint) observe(p *retry.Policy, name string) error {
	opts := []otelretry.Option{otelretry.WithMeterProvider(m.mp), otelretry.WithOperation(name)}
	obs, err := otelretry.New(opts...)
	if err != nil {
		return err
	}
	p.Observer = obs
	if p.Budget != nil {
		r, err := otelretry.ObserveBudget(p.Budget, name, opts...)
		if err != nil {
			return err
		}
		m.regs = append(m.regs, r)
	}
	if l, ok := p.Limiter.(*retry.AdaptiveLimiter); ok && l != nil {
		r, err := otelretry.ObserveLimiter(l, name, opts...)
		if err != nil {
			return err
		}
		m.regs = append(m.regs, r)
	}
	return nil
}

// observeServer counts srv's answers as retry.serve.requests, by outcome
// (accepted, throttled, faulted, upstream: let through but the upstream did
// not answer): what a rehearsal's clients got.
func (m *metricsEndpoint) observeServer(srv *retrytest.Server) error {
	meter := m.mp.Meter("github.com/jittered/retry/cmd/retry")
	c, err := meter.Int64ObservableCounter("retry.serve.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered by retry serve, by outcome."))
	if err != nil {
		return err
	}
	outcome := func(v string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", v)))
	}
	acc, thr, flt, up := outcome("accepted"), outcome("throttled"), outcome("faulted"), outcome("upstream")
	r, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		t := srv.Counters().Total
		o.ObserveInt64(c, int64(t.Accepted), acc)
		o.ObserveInt64(c, int64(t.Throttled), thr)
		o.ObserveInt64(c, int64(t.Faulted), flt)
		o.ObserveInt64(c, int64(t.Upstream), up)
		return nil
	}, c)
	if err != nil {
		return err
	}
	m.regs = append(m.regs, r)
	return nil
}

// Close stops serving and shuts the SDK down.
func (m *metricsEndpoint) Close() error {
	var errs []error
	for _, r := range m.regs {
		errs = append(errs, r.Unregister())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	errs = append(errs, m.srv.Shutdown(ctx), m.mp.Shutdown(ctx))
	return errors.Join(errs...)
}
