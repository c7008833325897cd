package redisretry_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jittered/retry"
	"github.com/jittered/retry/redisretry"
	"github.com/redis/go-redis/v9"
)

// Every process of a fleet that writes to the "orders" table shares one
// limiter: the same Key on the same Redis. Use it as any retry.Limiter.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	lim, err := redisretry.New(rdb, redisretry.Config{Key: "dynamodb:orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer lim.Close()
	p := &retry.Policy{MaxAttempts: 10, ThrottleAttempts: 100, Limiter: lim}
	err = p.Do(context.Background(), func(ctx context.Context) error {
		return nil // the write; a retry.Throttle(err) answer slows the whole fleet
	})
	fmt.Println(err)
}

// A bad configuration is an error naming the field, never a panic.
func ExampleNew_badConfig() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	_, err := redisretry.New(rdb, redisretry.Config{Key: "orders", Interval: 1})
	fmt.Println(err)
	// Output: redisretry: Config.Interval = 1ns: must be in [10ms, 10s] (0 means the default)
}
