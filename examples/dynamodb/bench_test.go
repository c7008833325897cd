package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"net/http"

	"github.com/jittered/retry/awsretry"
	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/dynalite"
)

// BenchmarkScenario is TestNothingLost's scenario (200 writers, 10,000
// conditional puts, a proxy of 500 writes/s with 5 % 500s and 1 % resets in
// front of dynalite) with the SDK's default retryer, the SDK's adaptive
// mode, and awsretry.New:
//
//	cd examples/dynamodb && go test -run '^$' -bench Scenario -benchtime 1x -count 3 -timeout 60m
func BenchmarkScenario(b *testing.B) {
	const items, rate, writers = 10000, 500.0, 200
	ideal := time.Duration(items / rate * float64(time.Second))
	db := dynalite.ForTest(b)
	for _, mode := range []struct {
		name string
		opts func(*dynamodb.Options)
	}{
		{"sdk-standard", func(*dynamodb.Options) {}},
		{"sdk-adaptive", func(o *dynamodb.Options) { o.RetryMode = aws.RetryModeAdaptive }},
		{"awsretry.New", func(o *dynamodb.Options) { o.Retryer = awsretry.New() }},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				table := mode.name + "-" + time.Now().Format("150405.000000")
				setupTable(b, db, table)
				px, err := retrytest.Start(retrytest.Config{Upstream: db.URL, Rate: rate, Burst: 50, P500: 0.05, PReset: 0.005, PResetAfter: 0.005, Seed: uint64(i + 1)})
				if err != nil {
					b.Fatal(err)
				}
				tr := &http.Transport{MaxIdleConnsPerHost: writers, MaxIdleConns: writers}
				o := dynamodb.Options{
					Region:       "us-east-1",
					Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
					BaseEndpoint: aws.String(px.URL),
					HTTPClient:   &http.Client{Transport: tr},
				}
				mode.opts(&o)
				c := dynamodb.New(o)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				var next, failed atomic.Int64
				start := time.Now()
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						for {
							n := int(next.Add(1)) - 1
							if n >= items || ctx.Err() != nil {
								return
							}
							if PutNew(ctx, c, table, "pk", Item(n)) != nil {
								failed.Add(1)
							}
						}
					})
				}
				wg.Wait()
				wall := time.Since(start)
				cancel()
				tot := px.Counters().Total
				px.Close()
				tr.CloseIdleConnections()
				stored := len(scanAll(b, db, table))
				b.ReportMetric(wall.Seconds()/ideal.Seconds(), "wall/ideal")
				b.ReportMetric(float64(tot.Accepted+tot.Throttled+tot.Faulted)/items, "attempts/item")
				b.ReportMetric(float64(tot.Throttled), "throttles")
				b.ReportMetric(float64(failed.Load()), "failures")
				b.ReportMetric(float64(items-stored), "missing")
			}
		})
	}
}
