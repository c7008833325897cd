package grpcretry_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/jittered/retry"
	"github.com/jittered/retry/grpcretry"
)

// busyOnce answers RESOURCE_EXHAUSTED to the first Check, then SERVING.
type busyOnce struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int32
}

func (h *busyOnce) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if h.calls.Add(1) == 1 {
		return nil, status.Error(codes.ResourceExhausted, "quota")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// The interceptors go on the connection; every call through it is retried
// by the Policy. Here a real server on loopback throttles the first call.
func ExampleUnaryClientInterceptor() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, &busyOnce{})
	go gs.Serve(ln)
	defer gs.Stop()

	policy := &retry.Policy{
		MaxAttempts: 5,
		Backoff:     retry.Exponential{Base: 10 * time.Millisecond, Cap: time.Second},
		Observer: retry.ObserverFuncs{Retry: func(e retry.RetryEvent) {
			fmt.Printf("attempt %d: %v (throttle: %v)\n", e.Attempt, status.Code(e.Err), e.Throttled)
		}},
	}
	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(), // grpc-go's own retry policy would multiply the attempts
		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(grpcretry.WithPolicy(policy))),
		grpc.WithStreamInterceptor(grpcretry.StreamClientInterceptor(grpcretry.WithPolicy(policy))),
	)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// attempt 1: ResourceExhausted (throttle: true)
	// SERVING <nil>
}
