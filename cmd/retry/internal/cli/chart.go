package cli

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// series is one line of a panel.
type series struct {
	Name string
	XY   plotter.XYs
}

// panel is one plot of a chart.
type panel struct {
	Title, X, Y string
	Lines       []series
}

// checkOut refuses an --out whose directory does not exist, before a long
// run rather than after it: charts are written only where asked, and no
// directory is created on the operator's behalf.
func checkOut(cmd, out string) error {
	if out == "" {
		return nil
	}
	dir := filepath.Dir(out)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usagef("%s: --out %q: directory %q does not exist (create it first)", cmd, out, dir)
	}
	return nil
}

// writeChart draws panels stacked vertically into base+".png" and
// base+".svg", and returns the two paths.
func writeChart(base string, panels []panel, width vg.Length) ([]string, error) {
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.Title
		p.X.Label.Text = pn.X
		p.Y.Label.Text = pn.Y
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		for j, s := range pn.Lines {
			l, err := plotter.NewLine(s.XY)
			if err != nil {
				return nil, fmt.Errorf("chart %q: %w", pn.Title, err)
			}
			l.Color = lineColor(j)
			l.Width = vg.Points(1.2)
			p.Add(l)
			p.Legend.Add(s.Name, l)
		}
		plots[i] = []*plot.Plot{p}
	}
	height := vg.Points(float64(220 * len(panels)))
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadY: vg.Points(10), PadLeft: vg.Points(4), PadRight: vg.Points(8)}

	var paths []string
	png := vgimg.New(width, height)
	dc := draw.New(png)
	for i, c := range plot.Align(plots, tiles, dc) {
		plots[i][0].Draw(c[0])
	}
	if err := writeFile(base+".png", func(f *os.File) error { _, err := (vgimg.PngCanvas{Canvas: png}).WriteTo(f); return err }); err != nil {
		return nil, err
	}
	paths = append(paths, base+".png")
	svg := vgsvg.New(width, height)
	dc = draw.New(svg)
	for i, c := range plot.Align(plots, tiles, dc) {
		plots[i][0].Draw(c[0])
	}
	if err := writeFile(base+".svg", func(f *os.File) error { _, err := svg.WriteTo(f); return err }); err != nil {
		return nil, err
	}
	return append(paths, base+".svg"), nil
}

func lineColor(i int) color.Color { return plotutil.Color(i) }

func writeFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
