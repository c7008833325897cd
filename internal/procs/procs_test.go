package procs

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const childEnv = "PROCS_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		var n int
		json.Unmarshal([]byte(v), &n)
		if n < 0 {
			fmt.Fprintln(os.Stderr, "negative")
			os.Exit(3)
		}
		json.NewEncoder(os.Stdout).Encode(map[string]int{"double": 2 * n, "pid": os.Getpid()})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	res, err := Run[int, map[string]int](childEnv, []int{1, 2, 3}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{os.Getpid(): true}
	for i, r := range res {
		if r["double"] != 2*(i+1) {
			t.Errorf("child %d answered %v, want double %d", i, r, 2*(i+1))
		}
		if pids[r["pid"]] {
			t.Errorf("child %d ran in process %d, not a process of its own", i, r["pid"])
		}
		pids[r["pid"]] = true
	}
	_, err = Run[int, map[string]int](childEnv, []int{1, -1}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "process 1") || !strings.Contains(err.Error(), "negative") {
		t.Errorf("a failing child: %v, want an error naming process 1 and its stderr", err)
	}
}
