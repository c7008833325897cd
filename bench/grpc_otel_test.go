package bench

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jittered/retry"
	"github.com/jittered/retry/grpcretry"
)

// TestGRPCRetryComposesWithOtelgrpc: with otelgrpc's client stats handler
// beneath grpcretry's interceptor, each attempt is its own client span, a
// child of the caller's span, as the grpcretry package doc says.
func TestGRPCRetryComposesWithOtelgrpc(t *testing.T) {
	s, err := StartGRPC(1, 1) // the first call is accepted, the next throttled for 1 s
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())

	p := &retry.Policy{MaxAttempts: 10, Backoff: retry.Constant{Interval: 200 * time.Millisecond}, Jitter: retry.NoJitter}
	conn, err := grpc.NewClient(s.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp))),
		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(grpcretry.WithPolicy(p))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(t.Context(), "caller")
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	accepted, throttled := s.Counts()
	var attempts []sdktrace.ReadOnlySpan
	for _, sp := range spans.GetSpans().Snapshots() {
		if sp.SpanKind() == trace.SpanKindClient && sp.Parent().SpanID() == parent.SpanContext().SpanID() {
			attempts = append(attempts, sp)
		}
	}
	if throttled == 0 || int64(len(attempts)) != throttled+1 || accepted != 2 {
		t.Errorf("%d client spans under the caller's span; the service accepted %d and throttled %d (want one span per attempt of the second call)",
			len(attempts), accepted, throttled)
	}
}
