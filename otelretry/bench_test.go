package otelretry_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jittered/retry"
	"github.com/jittered/retry/otelretry"
)

// benchPolicies returns the same Policy without telemetry and with an
// Observer on the real SDK (a manual reader: aggregation, no export), and
// a context holding a recording span.
func benchPolicies(b *testing.B) (none, otel *retry.Policy, ctx context.Context) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	b.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	obs, err := otelretry.New(otelretry.WithMeterProvider(mp), otelretry.WithOperation("bench"))
	if err != nil {
		b.Fatal(err)
	}
	// No delay between attempts: the benchmark measures the bookkeeping.
	none = &retry.Policy{MaxAttempts: 3, Backoff: retry.Constant{}}
	otel = &retry.Policy{MaxAttempts: 3, Backoff: retry.Constant{}, Observer: obs}
	ctx, span := tp.Tracer("bench").Start(context.Background(), "call")
	b.Cleanup(func() { span.End() })
	return none, otel, ctx
}

// BenchmarkSuccess: a call whose first attempt succeeds; "sdk" is the
// one histogram Record the Observer makes, called directly on the same
// SDK: the floor that telemetry costs.
func BenchmarkSuccess(b *testing.B) {
	none, otel, ctx := benchPolicies(b)
	op := func(context.Context) error { return nil }
	b.Run("sdk", func(b *testing.B) {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer mp.Shutdown(context.Background())
		h, _ := mp.Meter("bench").Int64Histogram("h", metric.WithExplicitBucketBoundaries(1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100))
		opts := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(otelretry.OperationKey.String("bench"), otelretry.OutcomeKey.String("success")))}
		b.ReportAllocs()
		for b.Loop() {
			h.Record(ctx, 1, opts...)
		}
	})
	both(b, none, otel, func(p *retry.Policy) { _ = p.Do(ctx, op) })
}

// both runs call as sub-benchmarks "none" and "otel".
func both(b *testing.B, none, otel *retry.Policy, call func(*retry.Policy)) {
	for _, c := range []struct {
		name string
		p    *retry.Policy
	}{{"none", none}, {"otel", otel}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				call(c.p)
			}
		})
	}
}

var errBench = errors.New("flaky")

// BenchmarkRetried: a call that fails once, is retried at once, and
// succeeds (a retry counted, a delay recorded, a span event added).
func BenchmarkRetried(b *testing.B) {
	none, otel, ctx := benchPolicies(b)
	both(b, none, otel, func(p *retry.Policy) {
		n := 0
		_ = p.Do(ctx, func(context.Context) error {
			if n++; n == 1 {
				return errBench
			}
			return nil
		})
	})
}

// TestSuccessPathAllocatesNothing: with the Observer on the real SDK, a
// call whose first attempt succeeds allocates nothing.
func TestSuccessPathAllocatesNothing(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	obs, err := otelretry.New(otelretry.WithMeterProvider(mp), otelretry.WithOperation("x"))
	if err != nil {
		t.Fatal(err)
	}
	p := &retry.Policy{Observer: obs}
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	_ = p.Do(ctx, op) // the SDK creates the series on first use
	if n := testing.AllocsPerRun(1000, func() { _ = p.Do(ctx, op) }); n != 0 {
		t.Errorf("Do with otelretry allocates %v times on the success path, want 0", n)
	}
}
