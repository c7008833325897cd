package retry_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jittered/retry"
)

// TestLimiterConfigDocumentsItsDefaults reads LimiterConfig's field
// comments in adaptive.go and checks that every Goodput default they state
// is the one a zero LimiterConfig gets, so that a change of default cannot
// leave the documentation behind (Fairness's comment once said 0.3 while
// the default was 0.15).
func TestLimiterConfigDocumentsItsDefaults(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "adaptive.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "LimiterConfig" {
			return true
		}
		for _, fl := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range fl.Names {
				docs[name.Name] = fl.Doc.Text() + " " + fl.Comment.Text()
			}
		}
		return false
	})
	if len(docs) == 0 {
		t.Fatal("no LimiterConfig in adaptive.go")
	}
	c := mustLimiter(t, retry.LimiterConfig{}).Config()
	num := regexp.MustCompile(`default ([0-9.]+)(?: (ms|s)\b)?`)
	for _, tc := range []struct {
		field string
		want  float64 // in seconds for durations
	}{
		{"Headroom", c.Headroom},
		{"Probe", c.Probe},
		{"Fairness", c.Fairness},
		{"Interval", c.Interval.Seconds()},
		{"CalmAfter", c.CalmAfter.Seconds()},
		{"Window", c.Window.Seconds()},
	} {
		doc := strings.Join(strings.Fields(docs[tc.field]), " ")
		m := num.FindStringSubmatch(doc)
		if m == nil {
			t.Errorf("%s: its comment states no default: %q", tc.field, doc)
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(m[1], "."), 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", tc.field, m[0], err)
		}
		if m[2] == "ms" {
			v /= 1000
		}
		if v != tc.want {
			t.Errorf("%s: the comment says %q, the default is %v", tc.field, m[0], tc.want)
		}
	}
	// The Goodput-specific defaults of the fields shared with CUBIC.
	for field, want := range map[string]string{
		"MinRate": strconv.FormatFloat(c.MinRate, 'g', -1, 64) + " for Goodput",
		"Burst":   strconv.FormatFloat(c.Burst, 'g', -1, 64) + " s for Goodput",
		"Beta":    "(default " + strconv.FormatFloat(c.Beta, 'g', -1, 64) + ")",
	} {
		if doc := strings.Join(strings.Fields(docs[field]), " "); !strings.Contains(doc, want) {
			t.Errorf("%s: the comment %q does not say %q", field, doc, want)
		}
	}
}
