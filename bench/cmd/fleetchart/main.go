// Command fleetchart draws the fleet benchmark's chart: for each number of
// client processes K, what the service saw per 100 ms — writes accepted and
// throttles, per second — with one Goodput limiter per process ("local")
// and with one redisretry limiter shared through Redis ("shared").
//
// Its input is what redisretry's BenchmarkFleet writes with
// REDISRETRY_TIMELINES set (the first run of each K and mode):
//
//	mkdir -p /tmp/fleet
//	(cd redisretry && REDISRETRY_REPS=1 REDISRETRY_TIMELINES=/tmp/fleet \
//	    go test -run '^$' -bench 'Fleet$' -benchtime 1x -timeout 30m)
//	go run ./bench/cmd/fleetchart -in /tmp/fleet -out docs/fleet
//
// It writes OUT.png and OUT.svg.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// timeline is one run's record, as BenchmarkFleet writes it.
type timeline struct {
	K         int
	Mode      string
	Interval  time.Duration
	Accepted  []int
	Throttled []int
}

func main() {
	in := flag.String("in", "", "directory of fleet-K<k>-<mode>.json files")
	out := flag.String("out", "docs/fleet", "output path without extension")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "fleetchart:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if in == "" {
		return fmt.Errorf("-in is required: the directory BenchmarkFleet wrote with REDISRETRY_TIMELINES")
	}
	files, err := filepath.Glob(filepath.Join(in, "fleet-K*-*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("-in %q: no fleet-K<k>-<mode>.json files", in)
	}
	byK := map[int][]timeline{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var tl timeline
		if err := json.Unmarshal(b, &tl); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if tl.K <= 0 || tl.Interval <= 0 || len(tl.Accepted) != len(tl.Throttled) {
			return fmt.Errorf("%s: K %d, interval %v, %d accepted and %d throttled buckets: not a fleet timeline", f, tl.K, tl.Interval, len(tl.Accepted), len(tl.Throttled))
		}
		byK[tl.K] = append(byK[tl.K], tl)
	}
	ks := make([]int, 0, len(byK))
	for k := range byK {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var plots [][]*plot.Plot
	for _, k := range ks {
		tls := byK[k]
		slices.SortFunc(tls, func(a, b timeline) int { return cmp.Compare(a.Mode, b.Mode) })
		p := plot.New()
		p.Title.Text = fmt.Sprintf("K = %d client processes, 1000 writes/s service", k)
		p.X.Label.Text = "seconds from start"
		p.Y.Label.Text = "per second"
		p.Legend.Top = true
		for _, tl := range tls {
			for j, what := range []struct {
				name string
				v    []int
			}{{"accepted", tl.Accepted}, {"throttled", tl.Throttled}} {
				l, err := plotter.NewLine(perSecond(what.v, tl.Interval))
				if err != nil {
					return err
				}
				l.Color = colorOf(tl.Mode)
				l.Width = vg.Points(1)
				if j == 1 {
					l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
				}
				p.Add(l)
				p.Legend.Add(tl.Mode+" "+what.name, l)
			}
		}
		p.Y.Min = 0
		plots = append(plots, []*plot.Plot{p})
	}
	w, h := vg.Points(720), vg.Points(float64(190*len(plots)))
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	draw1 := func(c draw.Canvas) {
		for i, row := range plot.Align(plots, tiles, c) {
			plots[i][0].Draw(row[0])
		}
	}
	img := vgimg.New(w, h)
	draw1(draw.New(img))
	if err := save(out+".png", func(f *os.File) error { _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); return err }); err != nil {
		return err
	}
	svg := vgsvg.New(w, h)
	draw1(draw.New(svg))
	if err := save(out+".svg", func(f *os.File) error { _, err := svg.WriteTo(f); return err }); err != nil {
		return err
	}
	fmt.Printf("chart: %s.png, %s.svg\n", out, out)
	return nil
}

// perSecond turns counts per interval into a rate per second over time.
func perSecond(v []int, interval time.Duration) plotter.XYs {
	xy := make(plotter.XYs, len(v))
	for i, n := range v {
		xy[i].X = (time.Duration(i) * interval).Seconds()
		xy[i].Y = float64(n) / interval.Seconds()
	}
	return xy
}

func colorOf(mode string) color.Color {
	if mode == "shared" {
		return color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	}
	return color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
}

func save(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
