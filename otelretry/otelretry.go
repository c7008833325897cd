// Package otelretry reports what retry loops do as OpenTelemetry metrics
// and span events: attempts per call, retries by kind, give-ups by reason,
// the delays slept, the time queued for an adaptive limiter, and, as
// gauges, the tokens left in a retry budget and an adaptive limiter's send
// rate.
//
// One line wires it into a Policy, and so into everything driven by one
// (retry.Do, httpretry's transport):
//
//	obs, err := otelretry.New(otelretry.WithOperation("orders.put"))
//	policy.Observer = obs
//
// and into an AWS SDK for Go v2 client through awsretry's API option:
//
//	o.APIOptions = append(o.APIOptions, awsretry.Observe(obs))
//
// Instruments come from the global MeterProvider unless WithMeterProvider
// says otherwise; span events go to the span found in each call's context
// (trace.SpanFromContext), and nothing happens when there is none: the
// Observer creates no spans of its own.
//
// # Instruments
//
// There is no OpenTelemetry semantic convention for retry loops (the HTTP
// conventions define only http.request.resend_count, an attribute of each
// resent request's client span, which ResendCount sets beneath HTTP
// instrumentation), so these names are this package's own, in the
// conventions' style (dotted lowercase, UCUM units, bounded attribute
// values):
//
//	retry.call.attempts      histogram {attempt}  attempts per call, first included   retry.operation, retry.outcome
//	retry.retries            counter   {retry}    retries decided                    retry.operation, retry.kind
//	retry.give_ups           counter   {call}     calls given up                     retry.operation, retry.reason
//	retry.delay              histogram s          each delay before a retry          retry.operation, retry.kind
//	retry.limiter.queue_time histogram s          per call, time waiting for the     retry.operation
//	                                              limiter beyond the delays (only
//	                                              calls that waited)
//	retry.budget.tokens      gauge     {token}    tokens left (ObserveBudget)        retry.budget and WithAttributes
//	retry.limiter.rate       gauge     {attempt}/s the send rate while limiting      retry.limiter and WithAttributes
//	                                              (ObserveLimiter)
//	retry.limiter.limiting   gauge     (none)     1 while limiting, else 0           retry.limiter and WithAttributes
//	                                              (ObserveLimiterSet adds retry.limiter.key: one series per key held)
//
// Attribute values: retry.outcome is "success" or "gave_up"; retry.kind is
// "throttle", "transient" or "timeout" (retry.Kind); retry.reason is
// retry.Reason.Name ("max_attempts", "deadline", "budget", …);
// retry.operation, retry.budget and retry.limiter are names the caller
// chooses. No attribute ever holds an error's text: the number of series is
// the product of those small sets.
//
// # Span events
//
// On the span in the call's context: "retry" for each retry (retry.attempt,
// the attempt that failed; retry.kind; retry.delay in seconds; error.type,
// the failed attempt's Go error type) and "retry.give_up" (retry.attempts,
// retry.reason, error.type). Successes add no event.
//
// # Cost
//
// With no Observer the core pays nothing. With this one, a call whose
// first attempt succeeds records one histogram value; the attribute sets
// are built once, in New, so nothing is allocated beyond what the
// OpenTelemetry SDK itself allocates (BENCHMARKS.md measures it).
package otelretry

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/jittered/retry"
)

// ScopeName is the instrumentation scope of the instruments.
const ScopeName = "github.com/jittered/retry/otelretry"

// Attribute keys.
const (
	OperationKey = attribute.Key("retry.operation")
	OutcomeKey   = attribute.Key("retry.outcome")
	KindKey      = attribute.Key("retry.kind")
	ReasonKey    = attribute.Key("retry.reason")
	BudgetKey    = attribute.Key("retry.budget")
	LimiterKey   = attribute.Key("retry.limiter")
	// LimiterKeyKey is the key of a LimiterSet's limiter (ObserveLimiterSet).
	LimiterKeyKey = attribute.Key("retry.limiter.key")
	AttemptKey    = attribute.Key("retry.attempt")
	AttemptsKey   = attribute.Key("retry.attempts")
	DelayKey      = attribute.Key("retry.delay")
	ErrorTypeKey  = attribute.Key("error.type")
)

// Bucket boundaries: attempts per call (the schedules' usual limits), and
// delays from 1 ms to a minute.
var (
	attemptBuckets = []float64{1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100}
	delayBuckets   = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}
)

type config struct {
	mp         metric.MeterProvider
	op         string
	attrs      []attribute.KeyValue
	spanEvents bool
}

// An Option configures New, ObserveBudget and ObserveLimiter.
type Option func(*config)

// WithMeterProvider sets where instruments come from (default: the global
// MeterProvider, otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithOperation names what the Policy retries (retry.operation): an API
// operation, a table, a host — a name from a small set, never an ID.
func WithOperation(name string) Option {
	return func(c *config) { c.op = name }
}

// WithAttributes adds constant attributes to every measurement (a service
// name, a region). Their values must come from a small set.
func WithAttributes(kv ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, kv...) }
}

// WithoutSpanEvents turns off the span events (metrics only).
func WithoutSpanEvents() Option {
	return func(c *config) { c.spanEvents = false }
}

func newConfig(opts []Option) config {
	c := config{spanEvents: true}
	for _, o := range opts {
		o(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	return c
}

func (c config) meter() metric.Meter { return c.mp.Meter(ScopeName) }

// Observer is a retry.ContextObserver recording to OpenTelemetry. It is
// safe for concurrent use; one Observer serves any number of Policies and
// calls.
type Observer struct {
	attempts metric.Int64Histogram
	retries  metric.Int64Counter
	giveUps  metric.Int64Counter
	delay    metric.Float64Histogram
	queued   metric.Float64Histogram

	spanEvents bool
	base       attribute.Set
	// Option lists, built once: passed as opts... they allocate nothing
	// (a one-element variadic list built at each call would escape).
	success, gaveUp optSet
	byKind          [3]optSet // indexed by retry.Kind
	byReason        map[retry.Reason]optSet
	baseOpt         optSet
	kindAttr        [3]attribute.KeyValue
}

var _ retry.ContextObserver = (*Observer)(nil)

// New returns an Observer whose instruments come from the MeterProvider.
// It fails only if the provider refuses an instrument.
func New(opts ...Option) (*Observer, error) {
	c := newConfig(opts)
	m := c.meter()
	o := &Observer{spanEvents: c.spanEvents}
	var err, e error
	o.attempts, e = m.Int64Histogram("retry.call.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts per call, the first included."),
		metric.WithExplicitBucketBoundaries(attemptBuckets...))
	err = errors.Join(err, e)
	o.retries, e = m.Int64Counter("retry.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Retries decided, by kind of failure."))
	err = errors.Join(err, e)
	o.giveUps, e = m.Int64Counter("retry.give_ups", metric.WithUnit("{call}"),
		metric.WithDescription("Calls given up, by reason."))
	err = errors.Join(err, e)
	o.delay, e = m.Float64Histogram("retry.delay", metric.WithUnit("s"),
		metric.WithDescription("The delay before each retry."),
		metric.WithExplicitBucketBoundaries(delayBuckets...))
	err = errors.Join(err, e)
	o.queued, e = m.Float64Histogram("retry.limiter.queue_time", metric.WithUnit("s"),
		metric.WithDescription("Per call that waited for the adaptive limiter: the time waited beyond the delays."),
		metric.WithExplicitBucketBoundaries(delayBuckets...))
	err = errors.Join(err, e)
	if err != nil {
		return nil, fmt.Errorf("otelretry: creating instruments: %w", err)
	}

	base := append([]attribute.KeyValue(nil), c.attrs...)
	if c.op != "" {
		base = append(base, OperationKey.String(c.op))
	}
	with := func(kv ...attribute.KeyValue) optSet {
		return optsOf(attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), kv...)...))
	}
	o.base = attribute.NewSet(base...)
	o.baseOpt = optsOf(o.base)
	o.success = with(OutcomeKey.String("success"))
	o.gaveUp = with(OutcomeKey.String("gave_up"))
	for _, k := range []retry.Kind{retry.KindTransient, retry.KindThrottle, retry.KindTimeout} {
		o.kindAttr[k] = KindKey.String(k.String())
		o.byKind[k] = with(o.kindAttr[k])
	}
	o.byReason = make(map[retry.Reason]optSet)
	for r := retry.ReasonMaxAttempts; r <= retry.ReasonInvalid; r++ {
		o.byReason[r] = with(ReasonKey.String(r.Name()))
	}
	return o, nil
}

// optSet is one attribute set as the option lists of the instruments' calls.
type optSet struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

func optsOf(set attribute.Set) optSet {
	o := metric.WithAttributeSet(set)
	return optSet{add: []metric.AddOption{o}, record: []metric.RecordOption{o}}
}

func kindIndex(k retry.Kind) int {
	if int(k) < 3 {
		return int(k)
	}
	return int(retry.KindTransient)
}

// OnSuccessContext records the call's attempts and its time queued.
func (o *Observer) OnSuccessContext(ctx context.Context, e retry.SuccessEvent) {
	o.attempts.Record(ctx, int64(e.Attempts), o.success.record...)
	if e.Queued > 0 {
		o.queued.Record(ctx, e.Queued.Seconds(), o.baseOpt.record...)
	}
}

// OnRetryContext counts the retry, records its delay, and adds a "retry"
// event to the span in ctx.
func (o *Observer) OnRetryContext(ctx context.Context, e retry.RetryEvent) {
	k := kindIndex(e.Kind)
	o.retries.Add(ctx, 1, o.byKind[k].add...)
	o.delay.Record(ctx, e.Delay.Seconds(), o.byKind[k].record...)
	if !o.spanEvents {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(
			AttemptKey.Int(e.Attempt), o.kindAttr[k],
			DelayKey.Float64(e.Delay.Seconds()), ErrorTypeKey.String(errorType(e.Err))))
	}
}

// OnGiveUpContext counts the give-up by reason, records the call's attempts
// and time queued, and adds a "retry.give_up" event to the span in ctx.
func (o *Observer) OnGiveUpContext(ctx context.Context, e *retry.Error) {
	opt, ok := o.byReason[e.Reason]
	if !ok {
		opt = optsOf(attribute.NewSet(append(o.base.ToSlice(), ReasonKey.String(e.Reason.Name()))...))
	}
	o.giveUps.Add(ctx, 1, opt.add...)
	o.attempts.Record(ctx, int64(e.Attempts), o.gaveUp.record...)
	if e.Queued > 0 {
		o.queued.Record(ctx, e.Queued.Seconds(), o.baseOpt.record...)
	}
	if !o.spanEvents {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry.give_up", trace.WithAttributes(
			AttemptsKey.Int(e.Attempts), ReasonKey.String(e.Reason.Name()),
			ErrorTypeKey.String(errorType(e.Last))))
	}
}

// OnRetry is OnRetryContext without a context (a Run not started with
// StartContext calls the context methods with context.Background()).
func (o *Observer) OnRetry(e retry.RetryEvent) { o.OnRetryContext(context.Background(), e) }

// OnGiveUp is OnGiveUpContext without a context.
func (o *Observer) OnGiveUp(e *retry.Error) { o.OnGiveUpContext(context.Background(), e) }

// errorType names an error's Go type, unwrapping the core's marks
// (Throttle, RetryAfter, Permanent) — a bounded set, unlike its text.
func errorType(err error) string {
	if err == nil {
		return ""
	}
	for {
		u := errors.Unwrap(err)
		if u == nil || !isMark(err) {
			break
		}
		err = u
	}
	return reflect.TypeOf(err).String()
}

// isMark reports whether err is one of the core's wrappers, which only
// mark an error (Throttle, RetryAfter, Permanent): their type says nothing
// about the failure.
func isMark(err error) bool {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() == corePath
}

const corePath = "github.com/jittered/retry"

// ObserveBudget reports b's tokens as the gauge retry.budget.tokens, with
// retry.budget = name. Unregister the returned Registration when b is no
// longer used.
func ObserveBudget(b *retry.Budget, name string, opts ...Option) (metric.Registration, error) {
	if b == nil {
		return nil, errors.New("otelretry: ObserveBudget: nil *retry.Budget")
	}
	c := newConfig(opts)
	m := c.meter()
	g, err := m.Float64ObservableGauge("retry.budget.tokens", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens left in the retry budget."))
	if err != nil {
		return nil, fmt.Errorf("otelretry: creating retry.budget.tokens: %w", err)
	}
	set := metric.WithAttributeSet(attribute.NewSet(append(c.attrs, BudgetKey.String(name))...))
	return m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		ob.ObserveFloat64(g, b.Tokens(), set)
		return nil
	}, g)
}

// ObserveLimiterSet is ObserveLimiter for every key of s (awsretry.New's
// limiters per service, operation and resource; httpretry's per host),
// with retry.limiter = name and retry.limiter.key = the key. The set
// evicts idle keys, which bounds the series.
func ObserveLimiterSet(s *retry.LimiterSet, name string, opts ...Option) (metric.Registration, error) {
	if s == nil {
		return nil, errors.New("otelretry: ObserveLimiterSet: nil *retry.LimiterSet")
	}
	c := newConfig(opts)
	m := c.meter()
	rate, on, err := limiterGauges(m)
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		for key, l := range s.All() {
			observeLimiter(ob, rate, on, l, metric.WithAttributeSet(attribute.NewSet(append(c.attrs, LimiterKey.String(name), LimiterKeyKey.String(key))...)))
		}
		return nil
	}, rate, on)
}

func limiterGauges(m metric.Meter) (metric.Float64ObservableGauge, metric.Int64ObservableGauge, error) {
	rate, err1 := m.Float64ObservableGauge("retry.limiter.rate", metric.WithUnit("{attempt}/s"),
		metric.WithDescription("The adaptive limiter's send rate, while it limits."))
	on, err2 := m.Int64ObservableGauge("retry.limiter.limiting",
		metric.WithDescription("1 while the adaptive limiter limits, 0 while it is calm."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, fmt.Errorf("otelretry: creating limiter gauges: %w", err)
	}
	return rate, on, nil
}

func observeLimiter(ob metric.Observer, rate metric.Float64ObservableGauge, on metric.Int64ObservableGauge, l *retry.AdaptiveLimiter, set metric.ObserveOption) {
	r, limiting := l.Rate()
	v := int64(0)
	if limiting {
		v = 1
		ob.ObserveFloat64(rate, r, set)
	}
	ob.ObserveInt64(on, v, set)
}

// ObserveLimiter reports l's send rate (retry.limiter.rate, observed only
// while it limits) and whether it limits (retry.limiter.limiting, 1 or 0),
// with retry.limiter = name. Unregister the returned Registration when l is
// no longer used.
func ObserveLimiter(l *retry.AdaptiveLimiter, name string, opts ...Option) (metric.Registration, error) {
	if l == nil {
		return nil, errors.New("otelretry: ObserveLimiter: nil *retry.AdaptiveLimiter")
	}
	c := newConfig(opts)
	m := c.meter()
	rate, on, err := limiterGauges(m)
	if err != nil {
		return nil, err
	}
	set := metric.WithAttributeSet(attribute.NewSet(append(c.attrs, LimiterKey.String(name))...))
	return m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		observeLimiter(ob, rate, on, l, set)
		return nil
	}, rate, on)
}
