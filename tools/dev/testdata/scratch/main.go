// The release check's scratch program: built in a fresh module that got
// every published module from the file proxy, as a user's program would.
// It uses each module for real and exits non-zero if anything is off.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/jittered/retry"
	"github.com/jittered/retry/awsretry"
	"github.com/jittered/retry/grpcretry"
	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/otelretry"
	"github.com/jittered/retry/redisretry"
	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/redisserver"
	"github.com/redis/go-redis/v9"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scratch:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Root module: a retry loop that succeeds on the third try.
	calls := 0
	p := &retry.Policy{MaxAttempts: 4, Backoff: retry.Exponential{Base: time.Millisecond}}
	err := p.Do(ctx, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("transient")
		}
		return nil
	})
	if err != nil || calls != 3 {
		return fmt.Errorf("Policy.Do: err=%v after %d calls, want nil after 3", err, calls)
	}
	fmt.Println("github.com/jittered/retry: Policy.Do succeeded on try", calls)

	// otelretry: the same loop, observed through the OpenTelemetry SDK.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := otelretry.New(otelretry.WithMeterProvider(mp), otelretry.WithOperation("scratch"))
	if err != nil {
		return err
	}
	p.Observer = obs
	calls = 0
	if err := p.Do(ctx, func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("transient")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("Policy.Do with otelretry: %w", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	retries := int64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "retry.retries" {
				for _, dp := range s.DataPoints {
					retries += dp.Value
				}
			}
		}
	}
	if retries != 2 {
		return fmt.Errorf("otelretry: retry.retries = %d, want 2", retries)
	}
	fmt.Println("github.com/jittered/retry/otelretry: retry.retries =", retries)

	// grpcretry: a real gRPC health server on loopback that answers
	// UNAVAILABLE once, called through the unary interceptor.
	if err := grpcCheck(ctx); err != nil {
		return fmt.Errorf("grpcretry: %w", err)
	}

	// retrytest + httpretry: a throttled service on loopback.
	srv, err := retrytest.Start(retrytest.Config{Rate: 200, Burst: 5, Shape: retrytest.TooManyRequests})
	if err != nil {
		return err
	}
	defer srv.Close()
	hp := retry.Policy{MaxAttempts: 20, Backoff: retry.Exponential{Base: 5 * time.Millisecond, Cap: 100 * time.Millisecond}}
	client := httpretry.NewClient(&hp)
	for i := range 40 {
		resp, err := client.Get(srv.URL + "/item/" + strconv.Itoa(i))
		if err != nil {
			return fmt.Errorf("httpretry GET %d: %w", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("httpretry GET %d: status %d", i, resp.StatusCode)
		}
	}
	fmt.Println("github.com/jittered/retry/retrytest + httpretry: 40 GETs through a 200/s throttle, all 200")

	// awsretry: the AWS SDK's DynamoDB client against the DynamoDB-shaped
	// service, retried by awsretry.New().
	ddbSrv, err := retrytest.Start(retrytest.Config{Rate: 200, Burst: 5, Shape: retrytest.DynamoDB})
	if err != nil {
		return err
	}
	defer ddbSrv.Close()
	ddb := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(ddbSrv.URL),
		Retryer:      awsretry.New(),
	})
	for i := range 40 {
		_, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String("t"),
			Item:      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: strconv.Itoa(i)}},
		})
		if err != nil {
			return fmt.Errorf("PutItem %d: %w", i, err)
		}
	}
	c := ddbSrv.Counters()
	fmt.Printf("github.com/jittered/retry/awsretry: 40 PutItems through a 200/s throttle (%d throttled answers on the way)\n", c.Total.Throttled)

	if err := fleet(ctx); err != nil {
		return fmt.Errorf("redisretry: %w", err)
	}
	return nil
}

// fleet: two limiters on one key of a real redis-server (two processes'
// handles, each its own go-redis client) pace httpretry clients against
// one throttled service; both must end up limiting at the fleet's one rate.
func fleet(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "scratch-redis")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rs, err := redisserver.Start(dir)
	if err != nil {
		return err
	}
	defer rs.Stop()
	srv, err := retrytest.Start(retrytest.Config{Rate: 100, Burst: 5, Shape: retrytest.TooManyRequests})
	if err != nil {
		return err
	}
	defer srv.Close()
	var lims []*redisretry.Limiter
	errs := make(chan error, 2)
	for w := range 2 {
		rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
		defer rdb.Close()
		lim, err := redisretry.New(rdb, redisretry.Config{Key: "scratch", Timeout: time.Second})
		if err != nil {
			return err
		}
		defer lim.Close()
		lims = append(lims, lim)
		p := retry.Policy{MaxAttempts: 10, ThrottleAttempts: 100, Limiter: lim}
		client := httpretry.NewClient(&p)
		go func() {
			for i := range 100 {
				resp, err := client.Get(fmt.Sprintf("%s/item/%d-%d", srv.URL, w, i))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("GET: status %d", resp.StatusCode)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			return err
		}
	}
	for i, l := range lims {
		if l.FellBack() || l.Stats().Commands == 0 {
			return fmt.Errorf("limiter %d: fell back %v after %d Redis commands (%v)", i, l.FellBack(), l.Stats().Commands, l.Err())
		}
	}
	// Each heard the fleet's rate at its last report: both limiting, near
	// the service's 100/s.
	r0, on0 := lims[0].Rate()
	r1, on1 := lims[1].Rate()
	if !on0 || !on1 || r0 < 25 || r0 > 400 || r1 < 25 || r1 > 400 {
		return fmt.Errorf("rates %.1f (limiting %v) and %.1f (%v): want both limiting within 4× of 100/s", r0, on0, r1, on1)
	}
	fmt.Printf("github.com/jittered/retry/redisretry: 2 limiters on one Redis key, 200 GETs through a 100/s throttle at the fleet's %.0f/s (%d throttled)\n",
		r0, srv.Counters().Total.Throttled)
	return nil
}

type flakyHealth struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int32
}

func (h *flakyHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if h.calls.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func grpcCheck(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h := &flakyHealth{}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, h)
	go gs.Serve(ln)
	defer gs.Stop()
	p := &retry.Policy{MaxAttempts: 3, Backoff: retry.Constant{Interval: time.Millisecond}}
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(grpcretry.WithPolicy(p))))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.calls.Load() != 2 {
		return fmt.Errorf("Check = %v, %v after %d calls; want SERVING after 2", resp, err, h.calls.Load())
	}
	fmt.Println("github.com/jittered/retry/grpcretry: Check succeeded on attempt", h.calls.Load())
	return nil
}
