package redisretry_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/jittered/retry/retrytest/redisserver"
)

// The tests run against a real redis-server (Debian's redis-server package)
// on 127.0.0.1, started on a free port by retrytest/redisserver. They skip
// when it is not installed — unless RETRY_REQUIRE_REDIS=1 (CI), where they
// fail.

func testMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's pool reaper and the test servers' waiters end with
		// their clients, closed by each test.
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"))
}

// startRedis starts a redis-server for t, stopped when t ends.
func startRedis(t testing.TB) *redisserver.Server { return redisserver.ForTest(t) }

// client returns a go-redis client of s, closed at the end of the test.
func client(t testing.TB, s *redisserver.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// restart starts a stopped s again on its port.
func restart(t testing.TB, s *redisserver.Server) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}
