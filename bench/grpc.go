package bench

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	grpcmw "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/jittered/retry/grpcretry"
	"github.com/jittered/retry/internal/sim"
)

// GRPCServer is a gRPC health service on 127.0.0.1 that accepts Rate calls
// per second (a token bucket of Burst) and answers the rest
// RESOURCE_EXHAUSTED, counting both.
type GRPCServer struct {
	healthpb.UnimplementedHealthServer
	Addr                string
	lim                 *rate.Limiter
	accepted, throttled atomic.Int64
	gs                  *grpc.Server
}

// StartGRPC serves until Stop.
func StartGRPC(r float64, burst int) (*GRPCServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &GRPCServer{Addr: ln.Addr().String(), lim: rate.NewLimiter(rate.Limit(r), burst), gs: grpc.NewServer()}
	healthpb.RegisterHealthServer(s.gs, s)
	go func() { _ = s.gs.Serve(ln) }()
	return s, nil
}

// Stop stops the server at once.
func (s *GRPCServer) Stop() { s.gs.Stop() }

// Counts returns the calls accepted and throttled so far.
func (s *GRPCServer) Counts() (accepted, throttled int64) {
	return s.accepted.Load(), s.throttled.Load()
}

// Check accepts within the rate, else answers RESOURCE_EXHAUSTED.
func (s *GRPCServer) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !s.lim.Allow() {
		s.throttled.Add(1)
		return nil, status.Error(codes.ResourceExhausted, "rate exceeded")
	}
	s.accepted.Add(1)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// GRPCTarget is one way to retry gRPC calls, as a connection's options.
type GRPCTarget struct {
	Name, Setting string
	Options       func(c Common) []grpc.DialOption
}

// GRPCTargets are the compared retriers: this library's interceptor with
// the recommended Policy, grpc-go's built-in retry policy with
// retryThrottling, and go-grpc-middleware v2's retry interceptor.
func GRPCTargets() []GRPCTarget {
	return []GRPCTarget{
		{"jittered/retry grpcretry", "grpcretry interceptors with the recommended Policy (internal/sim.Recommended: Goodput limiter, full jitter over Base..Cap, throttle backoff capped at 100 ms); grpc-go's retries disabled",
			func(c Common) []grpc.DialOption {
				p := sim.Recommended(1)
				p.MaxAttempts = c.Attempts
				return []grpc.DialOption{grpc.WithDisableRetry(), grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(grpcretry.WithPolicy(p)))}
			}},
		{"grpc-go built-in retry", "service config retryPolicy: maxAttempts 5 (grpc-go's ceiling), initialBackoff Base, maxBackoff Cap, multiplier 2, RESOURCE_EXHAUSTED and UNAVAILABLE; retryThrottling maxTokens 100, tokenRatio 0.1 (the gRFC A6 example)",
			func(c Common) []grpc.DialOption {
				cfg := fmt.Sprintf(`{"methodConfig":[{"name":[{"service":"grpc.health.v1.Health"}],"retryPolicy":{"maxAttempts":5,"initialBackoff":"%gs","maxBackoff":"%gs","backoffMultiplier":2,"retryableStatusCodes":["RESOURCE_EXHAUSTED","UNAVAILABLE"]}}],"retryThrottling":{"maxTokens":100,"tokenRatio":0.1}}`,
					c.Base.Seconds(), c.Cap.Seconds())
				return []grpc.DialOption{grpc.WithDefaultServiceConfig(cfg)}
			}},
		{"go-grpc-middleware v2 retry", "retry.UnaryClientInterceptor: WithMax(attempts−1), WithCodes(RESOURCE_EXHAUSTED, UNAVAILABLE), BackoffExponentialWithJitterBounded(Base, 0.1, Cap); grpc-go's retries disabled",
			func(c Common) []grpc.DialOption {
				return []grpc.DialOption{grpc.WithDisableRetry(), grpc.WithUnaryInterceptor(grpcmw.UnaryClientInterceptor(
					grpcmw.WithMax(uint(c.Attempts-1)),
					grpcmw.WithCodes(codes.ResourceExhausted, codes.Unavailable),
					grpcmw.WithBackoff(grpcmw.BackoffExponentialWithJitterBounded(c.Base, 0.1, c.Cap)),
				))}
			}},
	}
}

// GRPCResult is one load run.
type GRPCResult struct {
	Wall                time.Duration
	Calls, Failures     int
	Accepted, Throttled int64 // counted by the server
	P50, P99            time.Duration
}

// RunGRPCLoad has clients goroutines make items unary calls in all through
// one connection configured by t, against s; it stops by itself after
// timeout.
func RunGRPCLoad(ctx context.Context, t GRPCTarget, s *GRPCServer, clients, items int, c Common, timeout time.Duration) (GRPCResult, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, t.Options(c)...)
	conn, err := grpc.NewClient(s.Addr, opts...)
	if err != nil {
		return GRPCResult{}, err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a0, t0 := s.Counts()
	var next atomic.Int64
	var failures atomic.Int64
	lat := make([][]time.Duration, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for k := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(items) && ctx.Err() == nil {
				t := time.Now()
				if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					failures.Add(1)
				}
				lat[k] = append(lat[k], time.Since(t))
			}
		})
	}
	wg.Wait()
	res := GRPCResult{Wall: time.Since(start), Failures: int(failures.Load())}
	a1, t1 := s.Counts()
	res.Accepted, res.Throttled = a1-a0, t1-t0
	all := slices.Concat(lat...)
	res.Calls = len(all)
	res.Failures += items - len(all) // not attempted before the timeout
	if len(all) > 0 {
		slices.Sort(all)
		res.P50, res.P99 = all[len(all)/2], all[min(len(all)-1, len(all)*99/100)]
	}
	return res, nil
}
