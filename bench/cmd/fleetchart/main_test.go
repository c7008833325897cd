package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunDrawsOnePanelPerK(t *testing.T) {
	dir := t.TempDir()
	for _, tl := range []timeline{
		{K: 1, Mode: "local", Interval: 100 * time.Millisecond, Accepted: []int{100, 100, 98}, Throttled: []int{50, 3, 0}},
		{K: 1, Mode: "shared", Interval: 100 * time.Millisecond, Accepted: []int{100, 99, 100}, Throttled: []int{40, 0, 1}},
		{K: 4, Mode: "shared", Interval: 100 * time.Millisecond, Accepted: []int{100, 100}, Throttled: []int{10, 0}},
	} {
		b, _ := json.Marshal(tl)
		if err := os.WriteFile(filepath.Join(dir, "fleet-K"+string(rune('0'+tl.K))+"-"+tl.Mode+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "fleet")
	if err := run(dir, out); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(out + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"K = 1 client processes", "K = 4 client processes", "shared throttled", "local accepted"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("the SVG does not say %q", want)
		}
	}
	if st, err := os.Stat(out + ".png"); err != nil || st.Size() == 0 {
		t.Errorf("no PNG: %v", err)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	if err := run("", "x"); err == nil || !strings.Contains(err.Error(), "-in is required") {
		t.Errorf("no -in: %v", err)
	}
	dir := t.TempDir()
	if err := run(dir, filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "no fleet-K") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "fleet-K2-local.json"), []byte(`{"K":2,"Interval":100000000,"Accepted":[1,2],"Throttled":[1]}`), 0o644)
	if err := run(dir, filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "not a fleet timeline") {
		t.Errorf("mismatched buckets: %v", err)
	}
}
