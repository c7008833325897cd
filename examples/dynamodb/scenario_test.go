package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/jittered/retry"
	"github.com/jittered/retry/awsretry"
	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/dynalite"
)

// client builds a DynamoDB client explicitly: static credentials, region,
// endpoint, HTTP client and Retryer, so the machine's environment
// (AWS_CA_BUNDLE, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE) cannot change it.
func client(endpoint string, r aws.Retryer, maxConns int) (*dynamodb.Client, *http.Transport) {
	tr := &http.Transport{MaxIdleConnsPerHost: maxConns, MaxIdleConns: maxConns}
	o := dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   &http.Client{Transport: tr},
	}
	if r != nil {
		o.Retryer = r
	}
	return dynamodb.New(o), tr
}

func proxy(t testing.TB, cfg retrytest.Config) *retrytest.Server {
	t.Helper()
	s, err := retrytest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func setupTable(t testing.TB, db *dynalite.Server, name string) {
	t.Helper()
	c, tr := client(db.URL, nil, 4)
	defer tr.CloseIdleConnections()
	if err := ensureTable(context.Background(), c, name); err != nil {
		t.Fatal(err)
	}
}

// scanAll reads the whole table directly from dynalite.
func scanAll(t testing.TB, db *dynalite.Server, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	c, tr := client(db.URL, nil, 4)
	defer tr.CloseIdleConnections()
	got := map[string]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got[it["pk"].(*types.AttributeValueMemberS).Value] = it
		}
	}
	return got
}

// TestNothingLost: 200 goroutines put 10,000 distinct items through a
// proxy with capacity 500 writes/s, 5 % HTTP 500s and 1 % connection resets
// (half of them after the write was stored: a lost response) into
// dynalite, with awsretry.New. Every write succeeds, and a Scan finds all
// 10,000 items with exactly the attributes written.
func TestNothingLost(t *testing.T) {
	db := dynalite.ForTest(t)
	setupTable(t, db, "items")
	px := proxy(t, retrytest.Config{Upstream: db.URL, Rate: 500, Burst: 50, P500: 0.05, PReset: 0.005, PResetAfter: 0.005, Seed: 11})
	c, tr := client(px.URL, awsretry.New(), 200)
	defer tr.CloseIdleConnections()

	const items = 10000
	var next, failed atomic.Int64
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= items {
					return
				}
				if err := PutNew(context.Background(), c, "items", "pk", Item(i)); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, fmt.Errorf("item %d: %w", i, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	tot := px.Counters().Total
	t.Logf("%d items in %v (ideal %v); proxy saw accepted %d, throttled %d, faulted %d", items, time.Since(start).Round(time.Millisecond), items/500*time.Second, tot.Accepted, tot.Throttled, tot.Faulted)
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed, e.g. %v", failed.Load(), errs)
	}
	if tot.Faulted < 500 {
		t.Errorf("only %d faults injected: the test did not exercise failures", tot.Faulted)
	}
	got := scanAll(t, db, "items")
	if len(got) != items {
		t.Fatalf("scan found %d items, want %d", len(got), items)
	}
	for i := range items {
		want := Item(i)
		if it, ok := got[want["pk"].(*types.AttributeValueMemberS).Value]; !ok || !sameItem(it, want) {
			t.Fatalf("item %d stored as %v, want %v", i, it, want)
		}
	}
}

// TestLostResponseResolved: the first attempt is stored but its response is
// lost (a reset after the write); the SDK retries; the conditional put then
// fails with ConditionalCheckFailed; PutNew reads the item back, finds
// exactly what it sent, and reports success.
func TestLostResponseResolved(t *testing.T) {
	db := dynalite.ForTest(t)
	setupTable(t, db, "lost")
	px := proxy(t, retrytest.Config{Upstream: db.URL, Record: true, Script: []retrytest.Fault{retrytest.FaultResetAfter}})
	c, tr := client(px.URL, awsretry.New(), 4)
	defer tr.CloseIdleConnections()

	if err := PutNew(context.Background(), c, "lost", "pk", Item(7)); err != nil {
		t.Fatalf("PutNew after a lost response: %v", err)
	}
	reqs := px.Requests()
	if len(reqs) < 3 || reqs[0].Outcome != "reset-after" {
		t.Fatalf("requests %+v: want the lost write, its retry and the read", reqs)
	}
	// A real conflict is still reported.
	other := Item(7)
	other["n"] = &types.AttributeValueMemberN{Value: "999"}
	if err := PutNew(context.Background(), c, "lost", "pk", other); !errors.Is(err, ErrConflict) {
		t.Errorf("conflicting write: %v, want ErrConflict", err)
	}
}

// TestBatchWriteUnprocessed: the proxy returns half of each batch as
// UnprocessedItems (as DynamoDB does under load); BatchWriteAll retries
// them with backoff until all 1000 items are written exactly.
func TestBatchWriteUnprocessed(t *testing.T) {
	db := dynalite.ForTest(t)
	setupTable(t, db, "batch")
	px := proxy(t, retrytest.Config{Upstream: db.URL, PartialBatch: 0.7, Seed: 5})
	c, tr := client(px.URL, awsretry.New(), 4)
	defer tr.CloseIdleConnections()

	var rounds atomic.Int64
	p := &retry.Policy{
		MaxAttempts: retry.Unlimited, MaxElapsed: time.Minute,
		Backoff:  retry.Exponential{Base: 5 * time.Millisecond, Cap: 200 * time.Millisecond},
		Observer: retry.ObserverFuncs{Retry: func(retry.RetryEvent) { rounds.Add(1) }},
	}
	var reqs []types.WriteRequest
	for i := range 1000 {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: Item(i)}})
	}
	if err := BatchWriteAll(context.Background(), c, p, "batch", reqs); err != nil {
		t.Fatal(err)
	}
	if rounds.Load() < 40 {
		t.Errorf("only %d retried rounds of unprocessed items: the proxy did not exercise them", rounds.Load())
	}
	got := scanAll(t, db, "batch")
	if len(got) != 1000 {
		t.Fatalf("%d items stored, want 1000", len(got))
	}
	for i := range 1000 {
		if !sameItem(got[fmt.Sprintf("item-%06d", i)], Item(i)) {
			t.Fatalf("item %d stored wrong", i)
		}
	}
}
