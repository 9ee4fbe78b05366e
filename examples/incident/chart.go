package main

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette colours the strategies, in the replay's order: the baselines warm, the library cool.
var palette = []color.Color{
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // naive
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // lock-poll
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // singleflight
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // lease
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // recommended
}

// writeChart draws the database queries per 100 ms of the charted run of every strategy
// over time, with the update and the burst marked, to file; the format follows its extension
// (.svg, .png, .pdf).
func (rep *report) writeChart(file string, cfg *config) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Database queries per 100 ms: %d instances, %.0f req/s on the hot key for %v, %v queries\non %s",
		cfg.Instances, cfg.Rate, cfg.Duration, cfg.Latency, rep.Backends.short())
	p.X.Label.Text = "seconds since the profile update"
	p.Y.Label.Text = "queries per 100 ms"
	p.X.Tick.Marker = secondTicks{}
	p.Legend.Top = true
	p.Legend.YOffs = -vg.Points(16) // below the labels of the update and the burst
	p.Add(plotter.NewGrid())

	peak := 1
	for _, s := range rep.Strategies {
		peak = max(peak, s.charted().PeakQueries)
	}
	top := float64(peak) * 1.12

	// The burst, shaded; the update, a dashed line.
	burstFrom := cfg.BurstAfter.Seconds()
	burstTo := burstFrom + cfg.Duration.Seconds()
	burst, err := plotter.NewPolygon(plotter.XYs{{X: burstFrom, Y: 0}, {X: burstTo, Y: 0}, {X: burstTo, Y: top}, {X: burstFrom, Y: top}})
	if err != nil {
		return err
	}
	burst.Color = color.RGBA{R: 0xee, G: 0xee, B: 0xee, A: 0xff}
	burst.LineStyle.Width = 0
	p.Add(burst)
	mark, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 0, Y: top}})
	if err != nil {
		return err
	}
	mark.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	mark.LineStyle.Color = color.Gray{Y: 0x40}
	p.Add(mark)
	labels, err := plotter.NewLabels(plotter.XYLabels{
		XYs:    plotter.XYs{{X: 0, Y: top}, {X: (burstFrom + burstTo) / 2, Y: top}},
		Labels: []string{" update (t0)", fmt.Sprintf("viral burst, %v", cfg.Duration)},
	})
	if err != nil {
		return err
	}
	labels.TextStyle[0].YAlign = draw.YTop
	labels.TextStyle[1].YAlign = draw.YTop
	labels.TextStyle[1].XAlign = draw.XCenter
	p.Add(labels)

	for _, s := range rep.Strategies {
		r := s.charted()
		xys := make(plotter.XYs, len(r.Series)+1)
		for j, n := range r.Series {
			xys[j] = plotter.XY{X: r.SeriesStart + float64(j)*bin.Seconds(), Y: float64(n)}
		}
		// The last interval ends one bin after it begins.
		xys[len(r.Series)] = plotter.XY{X: r.SeriesStart + float64(len(r.Series))*bin.Seconds(), Y: 0}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.StepStyle = plotter.PostStep
		l.LineStyle.Width = vg.Points(1.5)
		l.LineStyle.Color = palette[paletteIndex(r.Strategy)%len(palette)]
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s: %s, peak %d", r.Strategy, queries(r.Queries), r.PeakQueries), l)
	}
	p.Y.Min, p.Y.Max = 0, top
	return p.Save(11*vg.Inch, 5.5*vg.Inch, file)
}

// charted returns the run of s that the chart draws.
func (s *summary) charted() *result { return s.Runs[s.Charted] }

// queries says "1 query", "2 queries", ...
func queries(n int) string {
	if n == 1 {
		return "1 query"
	}
	return strconv.Itoa(n) + " queries"
}

// secondTicks marks every half second, with a minor tick every 100 ms.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for i := int(math.Ceil(lo * 10)); float64(i) <= hi*10; i++ {
		t := plot.Tick{Value: float64(i) / 10}
		if i%5 == 0 {
			t.Label = strconv.FormatFloat(t.Value, 'f', 1, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// paletteIndex returns the colour of a strategy, by its place among all strategies, so that a
// strategy keeps its colour when others are left out.
func paletteIndex(name string) int {
	for i, s := range strategies() {
		if s.Name == name {
			return i
		}
	}
	return 0
}
