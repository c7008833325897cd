// Command dynamodb is the motivating example of github.com/jittered/retry,
// done right: put items into a DynamoDB table with retries that survive
// throttling, transient failures and lost responses, without losing or
// duplicating a write.
//
//	go run . -endpoint http://127.0.0.1:8000 -items 1000
//
// Against a real table, leave -endpoint empty: the AWS SDK's usual
// configuration (environment, shared files) is used.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/jittered/retry/awsretry"
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
	items := fs.Int("items", 1000, "items to write")
	workers := fs.Int("workers", 50, "concurrent writers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client, err := newClient(ctx, *endpoint)
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
				if err := PutNew(ctx, client, *table, "pk", Item(i)); err != nil {
					failed.Add(1)
					fmt.Fprintf(os.Stderr, "item %d: %v\n", i, err)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("wrote %d items to %s in %v (%d failed)\n", *items-int(failed.Load()), *table, time.Since(start).Round(time.Millisecond), failed.Load())
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

func newClient(ctx context.Context, endpoint string) (*dynamodb.Client, error) {
	// One Retryer for every writer of the table: they share its limiter
	// and its budget, and so back off as a whole.
	retryer := awsretry.New()
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
	return dynamodb.NewTableExistsWaiter(c).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute)
}
