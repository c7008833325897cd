package main

import (
	"bytes"
	"os"
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

// TestGoalsFromMicro: the goal line read from the committed benchstat
// output is the one RESULTS.md states.
func TestGoalsFromMicro(t *testing.T) {
	if _, err := os.Stat("../../micro-stat.txt"); err != nil {
		t.Fatal("bench/micro-stat.txt, the data behind RESULTS.md, is missing")
	}
	var b bytes.Buffer
	writeGoals(&b, nil, nil, nil, 10000, 1000, "../../micro-stat.txt")
	if !strings.Contains(b.String(), "17.4 ns") || !strings.Contains(b.String(), "133.7 ns: 7.7×") || !strings.Contains(b.String(), "met") {
		t.Errorf("goals:\n%s", b.String())
	}
}
