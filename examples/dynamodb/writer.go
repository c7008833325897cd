package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/jittered/retry"
)

// ErrConflict is returned by PutNew when the key holds a different item.
var ErrConflict = errors.New("an item with this key already exists with other attributes")

// PutNew writes item under the condition that its key is new, so that a
// retry after a lost response cannot overwrite anything. The client's
// Retryer retries throttles and transient failures. If the write fails with
// ConditionalCheckFailed — which also happens when an earlier attempt of
// this very call was stored but its response was lost — a consistent read
// decides: the stored item equal to item means the write succeeded.
func PutNew(ctx context.Context, c *dynamodb.Client, table, keyAttr string, item map[string]types.AttributeValue) error {
	_, err := c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{
			"#k": keyAttr,
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return err
	}
	got, gerr := c.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{keyAttr: item[keyAttr]},
		ConsistentRead: aws.Bool(true),
	})
	if gerr != nil {
		return fmt.Errorf("conditional put failed and reading back failed too: %w (put: %w)", gerr, err)
	}
	if sameItem(got.Item, item) {
		return nil // our own earlier attempt was stored
	}
	return fmt.Errorf("%w: %w", ErrConflict, err)
}

func sameItem(a, b map[string]types.AttributeValue) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range maps.Keys(a) {
		if !reflect.DeepEqual(a[k], b[k]) {
			return false
		}
	}
	return true
}

// BatchWriteAll writes requests with BatchWriteItem (25 per call), retrying
// what DynamoDB leaves in UnprocessedItems with the Policy's backoff until
// everything is written, as AWS documents. The client's Retryer handles
// throttled or failed calls; this loop handles partial success, which is
// not an error to the SDK. Each round of unprocessed items counts as an
// attempt of p.
func BatchWriteAll(ctx context.Context, c *dynamodb.Client, p *retry.Policy, table string, requests []types.WriteRequest) error {
	for len(requests) > 0 {
		n := min(25, len(requests))
		chunk := requests[:n]
		requests = requests[n:]
		pending := map[string][]types.WriteRequest{table: chunk}
		err := p.Do(ctx, func(ctx context.Context) error {
			out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return retry.Permanent(err) // the client's Retryer already retried it
			}
			if len(out.UnprocessedItems) == 0 {
				return nil
			}
			pending = out.UnprocessedItems
			left := 0
			for _, reqs := range pending {
				left += len(reqs)
			}
			return retry.Throttle(fmt.Errorf("%d of the batch's items unprocessed", left))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
