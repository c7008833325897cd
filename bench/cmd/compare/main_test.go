package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNanoseconds(t *testing.T) {
	for in, want := range map[string]float64{"17.45n": 17.45, "1.345µ": 1345, "2m": 2e6, "8": 8} {
		if got, ok := nanoseconds(in); !ok || got != want {
			t.Errorf("nanoseconds(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	if _, ok := nanoseconds("fast"); ok {
		t.Error("parsed a non-number")
	}
}

// TestGoalsFromMicro: the success-path goal line is computed from
// benchstat's output — the first table's figure per name, the fastest peer
// other than the naive loop — and marked against the 5× goal.
func TestGoalsFromMicro(t *testing.T) {
	for _, tc := range []struct {
		peer, want string
	}{
		{"100.0n", "- Success path: 20.0 ns, 0 allocs; the fastest peer (peer_a) takes 100.0 ns: 5.0× (goal ≥ 5×: met)."},
		{"90.00n", "- Success path: 20.0 ns, 0 allocs; the fastest peer (peer_a) takes 90.0 ns: 4.5× (goal ≥ 5×: missed)."},
	} {
		micro := filepath.Join(t.TempDir(), "micro-stat.txt")
		stat := "                 │ sec/op │\n" +
			"Success/naive_loop-2      5.590n ± 16%\n" +
			"Success/jittered/retry-2  20.00n ±  9%\n" +
			"Success/peer_a-2          " + tc.peer + " ± 11%\n" +
			"Success/peer_b-2          1.200µ ± 20%\n" +
			"ThreeFailures/peer_c-2    1.000n ± 20%\n" +
			"                 │ B/op │\n" +
			"Success/jittered/retry-2  0.000 ± 0%\n" +
			"Success/peer_a-2          32.00 ± 0%\n"
		if err := os.WriteFile(micro, []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		writeGoals(&b, nil, nil, nil, 10000, 1000, micro)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("peer at %s: goals:\n%s\nwant the line\n%s", tc.peer, b.String(), tc.want)
		}
	}
}

// TestResultsStateTheCommittedMicroGoal: RESULTS.md's success-path goal
// line is the one the committed benchstat output gives (the two files are
// written by one run of run.sh and must not drift apart).
func TestResultsStateTheCommittedMicroGoal(t *testing.T) {
	if _, err := os.Stat("../../micro-stat.txt"); err != nil {
		t.Fatal("bench/micro-stat.txt, the data behind RESULTS.md, is missing")
	}
	var b bytes.Buffer
	writeGoals(&b, nil, nil, nil, 10000, 1000, "../../micro-stat.txt")
	line := ""
	for l := range strings.Lines(b.String()) {
		if strings.HasPrefix(l, "- Success path:") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no success-path goal from bench/micro-stat.txt:\n%s", b.String())
	}
	res, err := os.ReadFile("../../RESULTS.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res), line) {
		t.Errorf("bench/RESULTS.md does not state the goal line of bench/micro-stat.txt:\n%s", line)
	}
}
