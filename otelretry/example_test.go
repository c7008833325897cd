package otelretry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/jittered/retry"
	"github.com/jittered/retry/otelretry"
)

// One Observer, set on a Policy, records every call the Policy runs. Here
// the SDK's manual reader shows what a call that succeeded on its third
// attempt recorded; in production the MeterProvider exports to your
// collector or a Prometheus endpoint.
func Example() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	obs, err := otelretry.New(otelretry.WithMeterProvider(mp), otelretry.WithOperation("orders.put"))
	if err != nil {
		panic(err)
	}
	p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: time.Millisecond}, Jitter: retry.NoJitter, Observer: obs}

	calls := 0
	err = p.Do(context.Background(), func(context.Context) error {
		if calls++; calls < 3 {
			return retry.Throttle(errors.New("429 Too Many Requests"))
		}
		return nil
	})
	fmt.Println("Do:", err)

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, dp := range d.DataPoints {
				fmt.Printf("%s %s = %d\n", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value)
			}
		case metricdata.Histogram[int64]:
			for _, dp := range d.DataPoints {
				fmt.Printf("%s %s: %d call(s), %d attempts\n", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Sum)
			}
		case metricdata.Histogram[float64]:
			for _, dp := range d.DataPoints {
				fmt.Printf("%s %s: %d, %.3f s\n", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Sum)
			}
		}
	}
	// Output:
	// Do: <nil>
	// retry.call.attempts retry.operation=orders.put,retry.outcome=success: 1 call(s), 3 attempts
	// retry.retries retry.kind=throttle,retry.operation=orders.put = 2
	// retry.delay retry.kind=throttle,retry.operation=orders.put: 2, 0.002 s
}
