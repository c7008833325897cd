// Command dynamodb is the motivating example of github.com/jittered/retry,
// done right: put items into a DynamoDB table with retries that survive
// throttling, transient failures and lost responses, without losing or
// duplicating a write.
//
//	go run . -endpoint http://127.0.0.1:8000 -items 1000
//
// Against a real table, leave -endpoint empty: the AWS SDK's usual
// configuration (environment, shared files) is used.
//
// A fleet: run it in every pod with the same -redis address, and every
// process writing to the table shares one adaptive limiter through Redis
// (redisretry): the fleet learns the table's capacity once, a new pod starts
// at its share of it, and the pods do not probe past it together.
//
//	go run . -endpoint http://127.0.0.1:8000 -redis 127.0.0.1:6379 -from 0 -items 1000     # pod 1
//	go run . -endpoint http://127.0.0.1:8000 -redis 127.0.0.1:6379 -from 1000 -items 1000  # pod 2
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/redis/go-redis/v9"

	"github.com/jittered/retry/awsretry"
	"github.com/jittered/retry/redisretry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dynamodb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dynamodb", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "DynamoDB endpoint (e.g. http://127.0.0.1:8000 for a local server); empty: AWS")
	table := fs.String("table", "retry-example", "table name (created if missing, key attribute pk)")
	from := fs.Int("from", 0, "index of the first item (pods of a fleet write disjoint ranges)")
	items := fs.Int("items", 1000, "items to write")
	workers := fs.Int("workers", 50, "concurrent writers")
	redisAddr := fs.String("redis", "", "Redis address(es), comma-separated: share one limiter per table with every process using them (empty: this process's own)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *items < 0 || *from < 0 || *workers < 1 {
		return fmt.Errorf("-from %d -items %d -workers %d: want -from, -items ≥ 0 and -workers ≥ 1", *from, *items, *workers)
	}
	retryer := awsretry.New()
	var fleet *redisretry.Limiter
	if *redisAddr != "" {
		// One Redis key per table: every pod writing to this table, and
		// only those, share the limiter.
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(*redisAddr, ",")})
		defer rdb.Close()
		var err error
		fleet, err = redisretry.New(rdb, redisretry.Config{Key: "dynamodb:" + *table})
		if err != nil {
			return err
		}
		defer fleet.Close()
		retryer = awsretry.New(func(o *awsretry.Options) {
			o.Limiters = nil         // not one limiter per operation of this process:
			o.Policy.Limiter = fleet // the fleet's, for this table
		})
	}
	client, err := newClient(ctx, *endpoint, retryer)
	if err != nil {
		return err
	}
	if err := ensureTable(ctx, client, *table); err != nil {
		return err
	}
	start := time.Now()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *items || ctx.Err() != nil {
					return
				}
				i += *from
				if err := PutNew(ctx, client, *table, "pk", Item(i)); err != nil {
					failed.Add(1)
					fmt.Fprintf(os.Stderr, "item %d: %v\n", i, err)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("wrote %d items to %s in %v (%d failed)\n", *items-int(failed.Load()), *table, time.Since(start).Round(time.Millisecond), failed.Load())
	if fleet != nil {
		st := fleet.Stats()
		fmt.Printf("fleet limiter %s: %d Redis commands, %d slots leased, %d fallbacks, %d rejoins\n",
			fleet.Key(), st.Commands, st.Leased, st.Fallbacks, st.Rejoins)
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d writes failed", failed.Load())
	}
	return nil
}

// Item is the i-th item of the example: a key and two attributes.
func Item(i int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk":      &types.AttributeValueMemberS{Value: fmt.Sprintf("item-%06d", i)},
		"n":       &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
		"payload": &types.AttributeValueMemberS{Value: fmt.Sprintf("payload of item %d: %x", i, i*2654435761)},
	}
}

// newClient builds the table's client around retryer. One Retryer for every
// writer of the table: they share its limiter and its budget, and so back
// off as a whole.
func newClient(ctx context.Context, endpoint string, retryer *awsretry.Retryer) (*dynamodb.Client, error) {
	if endpoint != "" {
		return dynamodb.New(dynamodb.Options{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
			BaseEndpoint: aws.String(endpoint),
			Retryer:      retryer,
		}), nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.Retryer = retryer }), nil
}

func ensureTable(ctx context.Context, c *dynamodb.Client, name string) error {
	_, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err == nil {
		return nil
	}
	_, err = c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("creating table %s: %w", name, err)
	}
	// The waiter's defaults poll every 20 s at first; an on-demand table is
	// usually active within seconds (a local one at once).
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	return w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute)
}
