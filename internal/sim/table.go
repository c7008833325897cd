package sim

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Row is one line of a comparison table.
type Row struct {
	Strategy string
	Clients  int
	Result   ThrottleResult
	Items    int
}

// Compare runs every strategy at every client count against the
// throttled-service model.
func Compare(strategies []Strategy, clients []int, items int, rate, burst float64, seed uint64) ([]Row, error) {
	return CompareContext(context.Background(), strategies, clients, items, rate, burst, seed)
}

// CompareContext is Compare stopping early when ctx ends: it returns the
// rows finished so far and ctx's cause.
func CompareContext(ctx context.Context, strategies []Strategy, clients []int, items int, rate, burst float64, seed uint64) ([]Row, error) {
	var rows []Row
	for _, c := range clients {
		for _, s := range strategies {
			r, err := Throttle(ThrottleConfig{Clients: c, Items: items, Rate: rate, Burst: burst, NewPolicy: s.New, Seed: seed, Context: ctx})
			if err != nil {
				if ctx.Err() != nil {
					return rows, err
				}
				return nil, fmt.Errorf("%s, C=%d: %w", s.Name, c, err)
			}
			rows = append(rows, Row{Strategy: s.Name, Clients: c, Result: r, Items: items})
		}
	}
	return rows, nil
}

// WriteMarkdown writes rows as a Markdown table.
func WriteMarkdown(w io.Writer, rows []Row) error {
	fmt.Fprintln(w, "| C | strategy | wall ÷ ideal | attempts ÷ N | throttled | failures | p50 | p99 |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		_, err := fmt.Fprintf(w, "| %d | %s | %.3f | %.2f | %d | %d | %v | %v |\n", r.Clients, r.Strategy,
			r.Result.WallRatio(), r.Result.AttemptsPerItem(r.Items), r.Result.Throttled, r.Result.Failures,
			round(r.Result.P50), round(r.Result.P99))
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes rows as an aligned text table.
func WriteText(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "C\tstrategy\twall/ideal\tattempts/N\tthrottled\tfailures\tp50\tp99\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%.3f\t%.2f\t%d\t%d\t%v\t%v\t\n", r.Clients, r.Strategy,
			r.Result.WallRatio(), r.Result.AttemptsPerItem(r.Items), r.Result.Throttled, r.Result.Failures,
			round(r.Result.P50), round(r.Result.P99))
	}
	return tw.Flush()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
