package cli

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/guptarohit/asciigraph"
	"gonum.org/v1/plot/plotter"
)

// chartFlag adds --chart: whether to draw the charts in the terminal.
func chartFlag(fs *flagSet) *string {
	return fs.String("chart", "auto", "draw the charts in the terminal after the table: auto (when standard output is a terminal), always or never")
}

// checkChart refuses a bad --chart before a long run.
func checkChart(cmd, mode string) error {
	switch mode {
	case "auto", "always", "never":
		return nil
	}
	return usagef("%s: --chart %q: must be auto, always or never", cmd, mode)
}

// showChart draws panels on w as terminal line charts (asciigraph), when
// mode says so; the PNG/SVG files are written only with --out.
func showChart(w io.Writer, mode string, panels []panel) error {
	switch mode {
	case "never":
		return nil
	case "auto":
		if !isTerminal(w) {
			return nil
		}
	case "always":
	default:
		return usagef("--chart %q: must be auto, always or never", mode)
	}
	colors := []asciigraph.AnsiColor{asciigraph.Red, asciigraph.Green, asciigraph.Blue, asciigraph.Yellow, asciigraph.Magenta, asciigraph.Cyan}
	for _, p := range panels {
		// One x axis for the panel: the span of all its series.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, l := range p.Lines {
			if len(l.XY) > 0 {
				lo, hi = min(lo, l.XY[0].X), max(hi, l.XY[len(l.XY)-1].X)
			}
		}
		var data [][]float64
		var names []string
		for _, l := range p.Lines {
			if len(l.XY) == 0 {
				continue
			}
			data = append(data, resample(l.XY, lo, hi, 72))
			names = append(names, l.Name)
		}
		if len(data) == 0 {
			continue
		}
		caption := fmt.Sprintf("%s (%s against %s, %.3g to %.3g)", p.Title, p.Y, p.X, lo, hi)
		var plots []string
		if isTerminal(w) {
			// One chart, a colour per series.
			plots = append(plots, asciigraph.PlotMany(data,
				asciigraph.Height(10), asciigraph.Width(72), asciigraph.Caption(caption),
				asciigraph.SeriesLegends(names...),
				asciigraph.SeriesColors(colors[:min(len(data), len(colors))]...)))
		} else {
			// No colours in a file or a pipe: a small chart per series,
			// on the panel's common scale.
			top := math.Inf(-1)
			for _, d := range data {
				for _, v := range d {
					if !math.IsNaN(v) {
						top = max(top, v)
					}
				}
			}
			for i, d := range data {
				plots = append(plots, asciigraph.Plot(d, asciigraph.Height(5), asciigraph.Width(72),
					asciigraph.LowerBound(0), asciigraph.UpperBound(top), asciigraph.Caption(caption+" — "+names[i])))
			}
		}
		for _, plot := range plots {
			if _, err := fmt.Fprintf(w, "\n%s\n", strings.TrimRight(plot, "\n")); err != nil {
				return err
			}
		}
	}
	return nil
}

// resample returns n values of a series at evenly spaced x over [lo, hi]
// (the nearest point at or before each x; NaN, a gap, outside the series).
func resample(xy plotter.XYs, lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	j := 0
	for i := range out {
		x := lo + (hi-lo)*float64(i)/float64(max(n-1, 1))
		if x < xy[0].X || x > xy[len(xy)-1].X {
			out[i] = math.NaN()
			continue
		}
		for j+1 < len(xy) && xy[j+1].X <= x {
			j++
		}
		out[i] = xy[j].Y
		if math.IsInf(out[i], 0) {
			out[i] = math.NaN()
		}
	}
	return out
}
