package otelretry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/jittered/retry"
	"github.com/jittered/retry/otelretry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a real OpenTelemetry SDK: a manual metric reader and an in-memory
// span exporter.
type rig struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{reader: sdkmetric.NewManualReader(), spans: tracetest.NewInMemoryExporter()}
	r.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans))
	t.Cleanup(func() {
		_ = r.mp.Shutdown(context.Background())
		_ = r.tp.Shutdown(context.Background())
	})
	return r
}

func (r *rig) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelretry.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, otelretry.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum returns the value of a counter's data point with exactly attrs.
func counter(t *testing.T, data map[string]metricdata.Aggregation, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	s, ok := data[name].(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s: no int64 sum in %v", name, data[name])
	}
	want := attribute.NewSet(attrs...)
	for _, dp := range s.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

func histogram[N int64 | float64](t *testing.T, data map[string]metricdata.Aggregation, name string, attrs ...attribute.KeyValue) (count uint64, sum N) {
	t.Helper()
	h, ok := data[name].(metricdata.Histogram[N])
	if !ok {
		t.Fatalf("%s: no histogram in %T", name, data[name])
	}
	want := attribute.NewSet(attrs...)
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Count, dp.Sum
		}
	}
	return 0, 0
}

var (
	errFlaky = errors.New("flaky")
	op       = otelretry.OperationKey.String("orders.put")
)

// TestThreeAttemptsThenSuccess: a throttle, then a transient error, then
// success: exact instrument values and span events.
func TestThreeAttemptsThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		obs, err := otelretry.New(otelretry.WithMeterProvider(r.mp), otelretry.WithOperation("orders.put"))
		if err != nil {
			t.Fatal(err)
		}
		p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Exponential{Base: 10 * time.Millisecond}, Jitter: retry.NoJitter, Observer: obs}
		ctx, span := r.tp.Tracer("test").Start(t.Context(), "call")
		calls := 0
		err = p.Do(ctx, func(context.Context) error {
			calls++
			switch calls {
			case 1:
				return retry.Throttle(errFlaky)
			case 2:
				return errFlaky
			}
			return nil
		})
		span.End()
		if err != nil {
			t.Fatal(err)
		}
		d := r.collect(t)
		if n, s := histogram[int64](t, d, "retry.call.attempts", op, otelretry.OutcomeKey.String("success")); n != 1 || s != 3 {
			t.Errorf("retry.call.attempts{success}: count %d sum %d, want 1 call of 3 attempts", n, s)
		}
		if c := counter(t, d, "retry.retries", op, otelretry.KindKey.String("throttle")); c != 1 {
			t.Errorf("retry.retries{throttle} = %d, want 1", c)
		}
		if c := counter(t, d, "retry.retries", op, otelretry.KindKey.String("transient")); c != 1 {
			t.Errorf("retry.retries{transient} = %d, want 1", c)
		}
		if n, s := histogram[float64](t, d, "retry.delay", op, otelretry.KindKey.String("throttle")); n != 1 || s != 0.010 {
			t.Errorf("retry.delay{throttle}: count %d sum %v, want one of 0.010 s", n, s)
		}
		if n, s := histogram[float64](t, d, "retry.delay", op, otelretry.KindKey.String("transient")); n != 1 || s != 0.020 {
			t.Errorf("retry.delay{transient}: count %d sum %v, want one of 0.020 s", n, s)
		}
		if _, ok := d["retry.give_ups"]; ok {
			t.Error("retry.give_ups has data after a success")
		}

		spans := r.spans.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want only the caller's: the Observer creates none", len(spans))
		}
		ev := spans[0].Events
		if len(ev) != 2 || ev[0].Name != "retry" || ev[1].Name != "retry" {
			t.Fatalf("span events %+v, want two \"retry\"", ev)
		}
		want := []map[attribute.Key]attribute.Value{
			{otelretry.AttemptKey: attribute.IntValue(1), otelretry.KindKey: attribute.StringValue("throttle"), otelretry.DelayKey: attribute.Float64Value(0.01), otelretry.ErrorTypeKey: attribute.StringValue("*errors.errorString")},
			{otelretry.AttemptKey: attribute.IntValue(2), otelretry.KindKey: attribute.StringValue("transient"), otelretry.DelayKey: attribute.Float64Value(0.02), otelretry.ErrorTypeKey: attribute.StringValue("*errors.errorString")},
		}
		for i, e := range ev {
			got := map[attribute.Key]attribute.Value{}
			for _, kv := range e.Attributes {
				got[kv.Key] = kv.Value
			}
			for k, v := range want[i] {
				if got[k] != v {
					t.Errorf("event %d: %s = %v, want %v", i, k, got[k].String(), v.String())
				}
			}
		}
	})
}

// TestBudgetRefusal: a budget that cannot pay for a retry: one give-up
// with reason "budget", counted, and an event on the span.
func TestBudgetRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		obs, _ := otelretry.New(otelretry.WithMeterProvider(r.mp), otelretry.WithOperation("orders.put"))
		b, err := retry.NewBudget(retry.BudgetConfig{Capacity: 0, RetryCost: 5})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := otelretry.ObserveBudget(b, "orders", otelretry.WithMeterProvider(r.mp))
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Unregister()
		p := &retry.Policy{MaxAttempts: 5, Budget: b, Observer: obs}
		ctx, span := r.tp.Tracer("test").Start(t.Context(), "call")
		err = p.Do(ctx, func(context.Context) error { return errFlaky })
		span.End()
		if !errors.Is(err, retry.ErrBudgetExhausted) {
			t.Fatalf("Do = %v, want a budget refusal", err)
		}
		d := r.collect(t)
		if c := counter(t, d, "retry.give_ups", op, otelretry.ReasonKey.String("budget")); c != 1 {
			t.Errorf("retry.give_ups{budget} = %d, want 1", c)
		}
		if n, s := histogram[int64](t, d, "retry.call.attempts", op, otelretry.OutcomeKey.String("gave_up")); n != 1 || s != 1 {
			t.Errorf("retry.call.attempts{gave_up}: count %d sum %d, want 1 call of 1 attempt", n, s)
		}
		g, ok := d["retry.budget.tokens"].(metricdata.Gauge[float64])
		if !ok || len(g.DataPoints) != 1 || g.DataPoints[0].Value != 0 {
			t.Errorf("retry.budget.tokens = %+v, want one point of 0", d["retry.budget.tokens"])
		} else if v, _ := g.DataPoints[0].Attributes.Value(otelretry.BudgetKey); v.AsString() != "orders" {
			t.Errorf("retry.budget.tokens attributes %v", g.DataPoints[0].Attributes)
		}
		ev := r.spans.GetSpans()[0].Events
		if len(ev) != 1 || ev[0].Name != "retry.give_up" {
			t.Fatalf("span events %+v, want one retry.give_up", ev)
		}
		got := attribute.NewSet(ev[0].Attributes...)
		if v, _ := got.Value(otelretry.ReasonKey); v.AsString() != "budget" {
			t.Errorf("give-up event reason %v", v.String())
		}
		if v, _ := got.Value(otelretry.AttemptsKey); v.AsInt64() != 1 {
			t.Errorf("give-up event attempts %v", v.String())
		}
	})
}

// TestLimiterThrottling: calls held by a limiting limiter record their
// queue time; the limiter's gauges show it limiting at its rate.
func TestLimiterThrottling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		obs, _ := otelretry.New(otelretry.WithMeterProvider(r.mp))
		l, err := retry.NewAdaptiveLimiter(retry.LimiterConfig{MinRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := otelretry.ObserveLimiter(l, "orders", otelretry.WithMeterProvider(r.mp))
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Unregister()
		d := r.collect(t)
		if g := d["retry.limiter.limiting"].(metricdata.Gauge[int64]); len(g.DataPoints) != 1 || g.DataPoints[0].Value != 0 {
			t.Errorf("calm limiter: retry.limiter.limiting %+v, want 0", g.DataPoints)
		}
		if _, ok := d["retry.limiter.rate"]; ok {
			t.Errorf("calm limiter: retry.limiter.rate observed: %+v", d["retry.limiter.rate"])
		}

		l.Observe(retry.OutcomeThrottled) // limiting at the floor, 10/s
		p := &retry.Policy{Limiter: l, Observer: obs}
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { _ = p.Do(t.Context(), func(context.Context) error { return nil }) })
		}
		wg.Wait()
		d = r.collect(t)
		n, s := histogram[float64](t, d, "retry.limiter.queue_time")
		if n < 4 || s < 0.5 || s > 1.5 {
			t.Errorf("retry.limiter.queue_time: %d calls, %.3f s in all; want ≥ 4 calls (those that waited) and about 1 s", n, s)
		}
		if n, sum := histogram[int64](t, d, "retry.call.attempts", otelretry.OutcomeKey.String("success")); n != 5 || sum != 5 {
			t.Errorf("retry.call.attempts: %d calls, %d attempts, want 5 and 5", n, sum)
		}
		rate, limiting := l.Rate()
		if g := d["retry.limiter.limiting"].(metricdata.Gauge[int64]); !limiting || g.DataPoints[0].Value != 1 {
			t.Errorf("retry.limiter.limiting %+v (limiter limiting: %v), want 1", g.DataPoints, limiting)
		}
		if g := d["retry.limiter.rate"].(metricdata.Gauge[float64]); len(g.DataPoints) != 1 || g.DataPoints[0].Value != rate {
			t.Errorf("retry.limiter.rate %+v, want %v", g.DataPoints, rate)
		}
	})
}

// TestCardinalityIsBounded: a thousand calls failing with a thousand
// different error texts make no more series than kinds and reasons.
func TestCardinalityIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		obs, _ := otelretry.New(otelretry.WithMeterProvider(r.mp), otelretry.WithOperation("orders.put"))
		p := &retry.Policy{MaxAttempts: 2, Backoff: retry.Constant{Interval: time.Millisecond}, Observer: obs}
		for i := range 1000 {
			e := fmt.Errorf("request %d failed: %w", i, errFlaky)
			if i%2 == 0 {
				e = retry.Throttle(e)
			}
			_ = p.Do(t.Context(), func(context.Context) error { return e })
		}
		d := r.collect(t)
		points := 0
		for name, a := range d {
			switch a := a.(type) {
			case metricdata.Sum[int64]:
				points += len(a.DataPoints)
			case metricdata.Histogram[int64]:
				points += len(a.DataPoints)
			case metricdata.Histogram[float64]:
				points += len(a.DataPoints)
			default:
				t.Errorf("%s: unexpected %T", name, a)
			}
		}
		// retries: throttle, transient; delay: the same two; give_ups:
		// max_attempts; call.attempts: gave_up.
		if points != 6 {
			t.Errorf("%d series after 1000 distinct errors, want 6", points)
		}
		if c := counter(t, d, "retry.give_ups", op, otelretry.ReasonKey.String("max_attempts")); c != 1000 {
			t.Errorf("retry.give_ups{max_attempts} = %d, want 1000", c)
		}
	})
}

// TestNoSpanNoEvent: without a recording span in the context, metrics
// still count and nothing else happens; WithoutSpanEvents keeps spans clean.
func TestSpanEventsOptional(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		obs, _ := otelretry.New(otelretry.WithMeterProvider(r.mp), otelretry.WithoutSpanEvents())
		p := &retry.Policy{MaxAttempts: 2, Backoff: retry.Constant{Interval: time.Millisecond}, Observer: obs}
		ctx, span := r.tp.Tracer("test").Start(t.Context(), "call")
		_ = p.Do(ctx, func(context.Context) error { return errFlaky })
		span.End()
		if ev := r.spans.GetSpans()[0].Events; len(ev) != 0 {
			t.Errorf("WithoutSpanEvents: events %+v", ev)
		}
		if c := counter(t, r.collect(t), "retry.retries", otelretry.KindKey.String("transient")); c != 1 {
			t.Errorf("retry.retries = %d, want 1", c)
		}
	})
}

func TestErrorTypeSeesThroughTheCoresMarks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		obs, _ := otelretry.New(otelretry.WithMeterProvider(r.mp))
		p := &retry.Policy{MaxAttempts: 2, Backoff: retry.Constant{Interval: time.Millisecond}, Observer: obs}
		ctx, span := r.tp.Tracer("test").Start(t.Context(), "call")
		_ = p.Do(ctx, func(context.Context) error {
			return retry.RetryAfter(time.Millisecond, retry.Throttle(context.DeadlineExceeded))
		})
		span.End()
		for _, e := range r.spans.GetSpans()[0].Events {
			set := attribute.NewSet(e.Attributes...)
			v, _ := set.Value(otelretry.ErrorTypeKey)
			if v.AsString() != "context.deadlineExceededError" {
				t.Errorf("%s: error.type %q, want the marked error's own type", e.Name, v.AsString())
			}
		}
	})
}

func TestObserveNil(t *testing.T) {
	if _, err := otelretry.ObserveBudget(nil, "x"); err == nil {
		t.Error("ObserveBudget(nil) succeeded")
	}
	if _, err := otelretry.ObserveLimiter(nil, "x"); err == nil {
		t.Error("ObserveLimiter(nil) succeeded")
	}
}

// TestObserveLimiterSet: one series per key, each with its own state.
func TestObserveLimiterSet(t *testing.T) {
	r := newRig(t)
	set, err := retry.NewLimiterSet(retry.LimiterConfig{MinRate: 10})
	if err != nil {
		t.Fatal(err)
	}
	set.Get("orders").Observe(retry.OutcomeThrottled)
	set.Get("users")
	reg, err := otelretry.ObserveLimiterSet(set, "dynamodb", otelretry.WithMeterProvider(r.mp))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	g := r.collect(t)["retry.limiter.limiting"].(metricdata.Gauge[int64])
	byKey := map[string]int64{}
	for _, dp := range g.DataPoints {
		k, _ := dp.Attributes.Value(otelretry.LimiterKeyKey)
		n, _ := dp.Attributes.Value(otelretry.LimiterKey)
		if n.AsString() != "dynamodb" {
			t.Errorf("retry.limiter = %q", n.AsString())
		}
		byKey[k.AsString()] = dp.Value
	}
	if len(byKey) != 2 || byKey["orders"] != 1 || byKey["users"] != 0 {
		t.Errorf("retry.limiter.limiting by key %v, want orders 1, users 0", byKey)
	}
	if _, err := otelretry.ObserveLimiterSet(nil, "x"); err == nil {
		t.Error("ObserveLimiterSet(nil) succeeded")
	}
}
