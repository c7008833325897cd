package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jittered/retry/retrytest"
	"github.com/jittered/retry/retrytest/dynalite"
	"github.com/jittered/retry/retrytest/redisserver"
)

// buildPod builds the example's program (not the test binary: no race
// detector, as a pod runs it) and returns its path.
func buildPod(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the fleet test builds the example with the go command: %v", err)
	}
	exe := filepath.Join(t.TempDir(), "pod")
	cmd := exec.Command(goBin, "build", "-o", exe, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// pods runs k processes of the example (exe), each writing its own range of
// items/k items to table through endpoint, with -redis redisAddr if set,
// all started at once; it returns each one's output and fails t if any
// exits non-zero.
func pods(t *testing.T, exe string, k, items, workers int, endpoint, table, redisAddr string) []string {
	t.Helper()
	out := make([]string, k)
	var wg sync.WaitGroup
	for i := range k {
		args := []string{"-endpoint", endpoint, "-table", table,
			"-from", strconv.Itoa(i * items / k), "-items", strconv.Itoa(items / k), "-workers", strconv.Itoa(workers)}
		if redisAddr != "" {
			args = append(args, "-redis", redisAddr)
		}
		cmd := exec.Command(exe, args...)
		wg.Go(func() {
			b, err := cmd.CombinedOutput()
			out[i] = string(b)
			if err != nil {
				t.Errorf("pod %d: %v\n%s", i, err, b)
			}
		})
	}
	wg.Wait()
	return out
}

var fleetLine = regexp.MustCompile(`fleet limiter (\S+): (\d+) Redis commands, (\d+) slots leased, (\d+) fallbacks, (\d+) rejoins`)

// TestFleetOfPods: four pods — separate processes running the example's
// program with one -redis address — write 1600 items to one dynalite table behind a
// proxy of 300 writes/s. Every write lands exactly once, every pod used the
// fleet's limiter (slots leased; at most two fallbacks, which a busy
// machine can cause) with far fewer Redis
// commands than attempts, the table's key lives in Redis with an expiry,
// and the fleet was throttled less than four pods each with its own
// limiter, run the same way on a second table.
func TestFleetOfPods(t *testing.T) {
	const k, items, workers, rate = 4, 1600, 25, 300.0
	db := dynalite.ForTest(t)
	rs := redisserver.ForTest(t)
	exe := buildPod(t)
	modes := []string{"local", "shared"}
	for _, mode := range modes {
		setupTable(t, db, "fleet-"+mode)
	}
	throttled := map[string]int{}
	for _, mode := range modes {
		table := "fleet-" + mode
		px := proxy(t, retrytest.Config{Upstream: db.URL, Rate: rate, Burst: 30, Seed: 3})
		addr := ""
		if mode == "shared" {
			addr = rs.Addr
		}
		start := time.Now()
		out := pods(t, exe, k, items, workers, px.URL, table, addr)
		if t.Failed() {
			t.FailNow()
		}
		el := time.Since(start)
		tot := px.Counters().Total
		throttled[mode] = tot.Throttled
		t.Logf("%s: %d pods wrote %d items in %v (ideal %v): accepted %d, throttled %d",
			mode, k, items, el.Round(time.Millisecond), time.Duration(items)*time.Second/time.Duration(rate), tot.Accepted, tot.Throttled)
		for i, o := range out {
			if !strings.Contains(o, fmt.Sprintf("wrote %d items to %s", items/k, table)) || !strings.Contains(o, "(0 failed)") {
				t.Errorf("pod %d did not report all its writes:\n%s", i, o)
			}
			m := fleetLine.FindStringSubmatch(o)
			if mode == "local" {
				if m != nil {
					t.Errorf("pod %d used a fleet limiter without -redis:\n%s", i, o)
				}
				continue
			}
			if m == nil {
				t.Errorf("pod %d printed no fleet limiter line:\n%s", i, o)
				continue
			}
			cmds, _ := strconv.Atoi(m[2])
			leased, _ := strconv.Atoi(m[3])
			// A Redis command over the 100 ms Timeout on a busy machine is a
			// correct fallback (TestRedisDownFallsBackAndRejoins is about
			// those); here the pods must have shared the fleet's line.
			fallbacks, _ := strconv.Atoi(m[4])
			if m[1] != "retry:limiter:dynamodb:"+table || leased == 0 || fallbacks > 2 {
				t.Errorf("pod %d: key %s, %d slots leased, %d fallbacks; want the table's key, leases, at most 2 fallbacks", i, m[1], leased, fallbacks)
			} else if fallbacks > 0 {
				t.Logf("pod %d fell back %d times (rejoined %s)", i, fallbacks, m[5])
			}
			// Leases in batches: about one command per period, not per attempt.
			if perPod := float64(tot.Accepted+tot.Throttled) / k; float64(cmds) > 0.5*perPod {
				t.Errorf("pod %d: %d Redis commands for about %.0f attempts", i, cmds, perPod)
			}
		}
		got := scanAll(t, db, table)
		if len(got) != items {
			t.Fatalf("%s: %d items stored, want %d", mode, len(got), items)
		}
		for i := range items {
			if it, ok := got[fmt.Sprintf("item-%06d", i)]; !ok || !sameItem(it, Item(i)) {
				t.Fatalf("%s: item %d stored as %v", mode, i, it)
			}
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ttl, err := rdb.PTTL(context.Background(), "retry:limiter:dynamodb:fleet-shared").Result()
	if err != nil || ttl <= 0 {
		t.Errorf("the table's key in Redis: TTL %v, %v; want a live key that expires", ttl, err)
	}
	if throttled["shared"] >= throttled["local"] {
		t.Errorf("throttles: %d with the fleet's limiter, %d with one per pod; want fewer", throttled["shared"], throttled["local"])
	}
}
