package redisretry_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// server is a real redis-server (Debian's redis-server package) on
// 127.0.0.1, started by the tests on a free port. Tests skip when it is not
// installed — unless RETRY_REQUIRE_REDIS=1 (CI), where they fail.
type server struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func testMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's pool reaper and the test servers' waiters end with
		// their clients, closed by each test.
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"))
}

func redisBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("RETRY_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not found (install Debian's redis-server; RETRY_REQUIRE_REDIS=1 forbids skipping): %v", err)
		}
		t.Skipf("redis-server not found: %v (install Debian's redis-server to run these tests)", err)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRedis starts a redis-server on port (0: a free one), without
// persistence, and waits until it answers PING. It is stopped at the end of
// the test.
func startRedis(t testing.TB, port int) *server {
	t.Helper()
	bin := redisBinary(t)
	if port == 0 {
		port = freePort(t)
	}
	s := &server{port: port, dir: t.TempDir()}
	s.start(t, bin)
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *server) start(t testing.TB, bin string) {
	t.Helper()
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			t.Fatalf("redis-server on port %d does not answer PING after 10 s: %v\n%s", s.port, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server and waits for it to exit.
func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// client returns a go-redis client of s, closed at the end of the test.
func (s *server) client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}
