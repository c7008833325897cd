package awsretry_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/jittered/retry/awsretry"
	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/dynalite"
)

// newClient builds a DynamoDB client explicitly (no shared config files, no
// environment: AWS_MAX_ATTEMPTS or AWS_RETRY_MODE cannot change what is
// measured).
func newClient(endpoint string, r aws.Retryer, tr http.RoundTripper) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   &http.Client{Transport: tr},
		Retryer:      r,
	})
}

func createTable(t testing.TB, c *dynamodb.Client, name string) {
	t.Helper()
	_, err := c.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable %s: %v", name, err)
	}
}

type row struct {
	name    string
	faults  []retrytest.Fault
	invalid bool // the item itself is invalid: dynalite answers ValidationException
	ok      bool
	// remaining quota after the row, for the SDK and for ours (they differ
	// where ours fixes aws-sdk-go-v2 #3186)
	sdkQuota, ourQuota uint
}

var F = struct{ ok, e500, thr, reset retrytest.Fault }{retrytest.FaultNone, retrytest.Fault500, retrytest.FaultThrottle, retrytest.FaultReset}

var rows = []row{
	{"first-try success", []retrytest.Fault{F.ok}, false, true, 500, 500},
	{"four 500s: gives up", []retrytest.Fault{F.e500, F.e500, F.e500, F.e500}, false, false, 458, 458},
	{"two throttles then success", []retrytest.Fault{F.thr, F.thr, F.ok}, false, true, 453, 453},
	{"first-try success adds 1", []retrytest.Fault{F.ok}, false, true, 454, 454},
	{"validation error: no retry", []retrytest.Fault{F.ok}, true, false, 454, 454},
	{"500 then success: refunded", []retrytest.Fault{F.e500, F.ok}, false, true, 454, 454},
	{"reset then success", []retrytest.Fault{F.reset, F.ok}, false, true, 454, 454},
	{"500 then validation: ours refunds (#3186)", []retrytest.Fault{F.e500, F.ok}, true, false, 440, 454},
	{"four throttles: gives up", []retrytest.Fault{F.thr, F.thr, F.thr, F.thr}, false, false, 425, 439},
}

// TestConformanceStandardDynamoDB runs the same response sequences, over
// HTTP through a retrytest proxy in front of dynalite, against the SDK's
// standard retryer (as a DynamoDB client configures it) and against
// StandardDynamoDB: same outcome, same number of attempts, and the same
// remaining retry quota — except where ours refunds a retry that ended in a
// non-retryable error. Delays are zeroed on both sides (compared exactly in
// TestRetryDelayFormula).
func TestConformanceStandardDynamoDB(t *testing.T) {
	db := dynalite.ForTest(t)
	var script []retrytest.Fault
	for _, r := range rows {
		script = append(script, r.faults...)
	}
	rl := ratelimit.NewTokenRateLimit(sdkretry.DefaultRetryRateTokens)
	sdk := sdkretry.NewStandard(func(o *sdkretry.StandardOptions) {
		o.MaxAttempts, o.BaseDelay, o.RateLimiter = 4, 25*time.Millisecond, rl
		o.Backoff = sdkretry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	})
	ours := awsretry.StandardDynamoDB(func(o *awsretry.Options) { o.Policy.Rand = func() float64 { return 0 } })

	setup := newClient(db.URL, sdkretry.NewStandard(), http.DefaultTransport)
	createTable(t, setup, "sdk")
	createTable(t, setup, "ours")

	for _, side := range []struct {
		name    string
		table   string
		retryer aws.Retryer
		quota   func() uint
		want    func(row) uint
	}{
		{"sdk", "sdk", sdk, rl.Remaining, func(r row) uint { return r.sdkQuota }},
		{"ours", "ours", ours, func() uint { return uint(ours.Policy().Budget.Tokens()) }, func(r row) uint { return r.ourQuota }},
	} {
		proxy := start(t, retrytest.Config{Upstream: db.URL, Script: script, Record: true})
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		c := newClient(proxy.URL, side.retryer, tr)
		sent := 0
		for i, r := range rows {
			item := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: side.name + "-" + r.name}}
			if r.invalid {
				item = map[string]types.AttributeValue{"nokey": &types.AttributeValueMemberS{Value: "x"}}
			}
			_, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(side.table), Item: item})
			attempts := len(proxy.Requests()) - sent
			sent += attempts
			if (err == nil) != r.ok {
				t.Errorf("%s row %d (%s): err %v, want ok=%v", side.name, i, r.name, err, r.ok)
			}
			if attempts != len(r.faults) {
				t.Errorf("%s row %d (%s): %d attempts, want %d", side.name, i, r.name, attempts, len(r.faults))
			}
			if got, want := side.quota(), side.want(r); got != want {
				t.Errorf("%s row %d (%s): quota %d, want %d", side.name, i, r.name, got, want)
			}
		}
	}
}

func start(t *testing.T, cfg retrytest.Config) *retrytest.Server {
	t.Helper()
	s, err := retrytest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
