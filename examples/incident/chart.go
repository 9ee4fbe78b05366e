package main

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// A look is how the chart draws a strategy. Colour, dashes and marker tell the strategies
// apart; the lines that often lie on another (the lease's, under the recommended
// configuration's) are drawn first and wider, so the one on top leaves them showing.
type look struct {
	color  color.Color
	width  vg.Length
	dashes []vg.Length
	glyph  draw.GlyphDrawer
}

// line returns the style of the look's line.
func (lk look) line() draw.LineStyle {
	return draw.LineStyle{Color: lk.color, Width: lk.width, Dashes: lk.dashes}
}

// looks are the strategies' looks, in the replay's order: the baselines warm, the library cool.
var looks = []look{
	{color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, 2, nil, draw.CircleGlyph{}},                    // naive
	{color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, 2, []vg.Length{7, 3}, draw.TriangleGlyph{}},    // lock-poll
	{color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, 2, []vg.Length{2, 2.5}, draw.SquareGlyph{}},    // singleflight
	{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, 5, nil, draw.BoxGlyph{}},                       // lease
	{color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, 1.6, []vg.Length{5, 2.5}, draw.PyramidGlyph{}}, // recommended
}

// The figure's size, and the space between its parts.
const (
	chartWidth  = 12 * vg.Inch
	chartHeight = 8 * vg.Inch
	gap         = vg.Length(12)
)

var (
	grey       = color.Gray{Y: 0x40}
	burstGrey  = color.Gray{Y: 0xee}
	dashed     = []vg.Length{4, 3}
	levelStyle = draw.LineStyle{Color: grey, Width: 1, Dashes: []vg.Length{1, 2}}
)

// writeChart draws the charted run of every strategy to file, in the format its extension
// names (.svg, .png, .pdf): above, the database queries that began in each 100 ms (what the
// database felt); below, the 99th percentile latency of the requests that began in each (what
// the users felt). The x-axis ends soon after the last query (see xRange); the legend stands
// beside the plots, not on them.
func (rep *report) writeChart(file string, cfg *config) error {
	format := strings.ToLower(strings.TrimPrefix(filepath.Ext(file), "."))
	c, err := draw.NewFormattedCanvas(chartWidth, chartHeight, format)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	// Text is aligned to the left wherever it could meet something on its right. The SVG names
	// its font, and a viewer without it substitutes another, often wider: text measured in
	// the one font and drawn in the other grows to the right.
	//
	// The title, on two lines at the top left.
	titleStyle := textStyle(13)
	titleStyle.YAlign = draw.YTop
	runs := "one run per strategy"
	if rep.Runs > 1 {
		runs = fmt.Sprintf("each strategy's median run of %d", rep.Runs)
	}
	title := fmt.Sprintf("Incident replay: %d instances, %.0f req/s on the hot key for %v, %v queries, %d connections\non %s; %s",
		cfg.Instances, cfg.Rate, cfg.Duration, cfg.Latency, cfg.Pool, rep.Backends.short(), runs)
	dc.FillText(titleStyle, vg.Point{X: dc.Min.X + gap, Y: dc.Max.Y - gap}, title)
	top := dc.Max.Y - gap - titleStyle.Height(title) - gap

	// The legend, in a column on the right as wide as its widest line, with room to spare for
	// a wider font than the one measured (DejaVu Serif, a common substitute, is about a quarter
	// wider than Liberation Serif).
	entries := rep.legend(cfg)
	legendWidth := legendSwatch + gap
	for _, e := range entries {
		legendWidth = max(legendWidth, legendSwatch+gap+max(textStyle(11).Width(e.name), textStyle(9.5).Width(e.detail)))
	}
	legendWidth = legendWidth * 4 / 3
	legendArea := draw.Canvas{Canvas: c, Rectangle: vg.Rectangle{
		Min: vg.Point{X: dc.Max.X - gap - legendWidth, Y: dc.Min.Y + gap},
		Max: vg.Point{X: dc.Max.X - gap, Y: top},
	}}
	plotArea := draw.Canvas{Canvas: c, Rectangle: vg.Rectangle{
		Min: vg.Point{X: dc.Min.X + gap, Y: dc.Min.Y + gap},
		Max: vg.Point{X: legendArea.Min.X - 2*gap, Y: top},
	}}

	from, to, cut := rep.xRange(cfg)
	queries, err := rep.queriesPanel(cfg, from, to)
	if err != nil {
		return err
	}
	latency, err := rep.latencyPanel(cfg, from, to)
	if err != nil {
		return err
	}
	latency.X.Label.Text = "seconds since the profile update" + cut
	panels := plot.Align([][]*plot.Plot{{queries}, {latency}}, draw.Tiles{Rows: 2, Cols: 1, PadY: gap}, plotArea)
	queries.Draw(panels[0][0])
	latency.Draw(panels[1][0])
	y := drawLegend(legendArea, entries, top-queries.DataCanvas(panels[0][0]).Max.Y)
	drawNotes(legendArea, y-gap, rep.readingNotes())

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// queriesPanel is the upper plot: the queries that began in each 100 ms, per strategy.
func (rep *report) queriesPanel(cfg *config, from, to float64) (*plot.Plot, error) {
	p := newPanel("What the database felt: queries begun per 100 ms", "queries", from, to)
	ceiling := 1.0
	for _, s := range rep.Strategies {
		ceiling = max(ceiling, float64(s.charted().PeakQueries))
	}
	capacity, showCapacity := rep.capacity(cfg)
	if showCapacity {
		ceiling = max(ceiling, capacity)
	}
	p.Y.Min, p.Y.Max = 0, ceiling*1.35 // room above the lines for the labels of the update and the burst
	p.Y.Tick.Marker = countTicks{}
	if err := addEvents(p, cfg, from, to, p.Y.Min, p.Y.Max, true); err != nil {
		return nil, err
	}
	if showCapacity {
		if err := addLevel(p, from, to, capacity); err != nil {
			return nil, err
		}
	}
	for i, s := range rep.drawOrder() {
		r := s.charted()
		ys := make([]float64, len(r.Series))
		for j, n := range r.Series {
			ys[j] = float64(n)
		}
		if err := addSeries(p, r, ys, from, to, i, len(rep.Strategies), false); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// latencyPanel is the lower plot: the 99th percentile latency of the requests that began in
// each 100 ms, per strategy, on a log scale, with the requests' timeout.
func (rep *report) latencyPanel(cfg *config, from, to float64) (*plot.Plot, error) {
	p := newPanel("What the users felt: p99 latency of the requests begun per 100 ms (log scale)", "p99", from, to)
	lo, hi := math.Inf(1), ms(cfg.Timeout)
	for _, s := range rep.Strategies {
		for _, v := range s.charted().P99Series {
			if v > 0 {
				lo, hi = min(lo, ms(time.Duration(v))), max(hi, ms(time.Duration(v)))
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo = 0.01
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi*1.5)))
	p.Y.Tick.Marker = msTicks{}
	if err := addEvents(p, cfg, from, to, p.Y.Min, p.Y.Max, false); err != nil {
		return nil, err
	}
	if err := addLevel(p, from, to, ms(cfg.Timeout)); err != nil {
		return nil, err
	}
	for i, s := range rep.drawOrder() {
		r := s.charted()
		ys := make([]float64, len(r.P99Series))
		for j, v := range r.P99Series {
			ys[j] = ms(time.Duration(v))
		}
		if err := addSeries(p, r, ys, from, to, i, len(rep.Strategies), true); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// newPanel returns a plot with the chart's common settings, its x-axis from `from` to `to`.
func newPanel(title, yLabel string, from, to float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 11
	p.Title.Padding = 6
	p.Y.Label.Text = yLabel
	p.X.Min, p.X.Max = from, to
	p.X.Tick.Marker = secondTicks{}
	return p
}

// addEvents shades the burst and marks the update with a dashed line, and labels them if
// labelled.
func addEvents(p *plot.Plot, cfg *config, from, to, bottom, top float64, labelled bool) error {
	burstFrom := cfg.BurstAfter.Seconds()
	burstTo := burstFrom + cfg.Duration.Seconds()
	shown := min(burstTo, to)
	burst, err := plotter.NewPolygon(plotter.XYs{{X: burstFrom, Y: bottom}, {X: shown, Y: bottom}, {X: shown, Y: top}, {X: burstFrom, Y: top}})
	if err != nil {
		return err
	}
	burst.Color = burstGrey
	burst.LineStyle.Width = 0
	p.Add(burst, plotter.NewGrid())
	mark, err := plotter.NewLine(plotter.XYs{{X: 0, Y: bottom}, {X: 0, Y: top}})
	if err != nil {
		return err
	}
	mark.LineStyle.Dashes = dashed
	mark.LineStyle.Color = grey
	p.Add(mark)
	if !labelled {
		return nil
	}
	label := fmt.Sprintf(" viral burst, %v", cfg.Duration)
	if burstTo > to {
		label += fmt.Sprintf(" (goes on to %.1f s) →", burstTo)
	}
	// Both labels are aligned to the left, one under the other: they stand to the right of
	// their lines, and the update's at the top left of the burst when it begins with it.
	p.Add(
		note{x: 0, y: top, text: " update (t0)", yAlign: draw.YTop, size: 9.5},
		note{x: burstFrom, y: top, text: label, yAlign: draw.YTop, size: 9.5, drop: 1},
	)
	return nil
}

// addLevel draws a dotted horizontal line at y, which the legend explains: a label in the plot
// would sooner or later lie on a line.
func addLevel(p *plot.Plot, from, to, y float64) error {
	l, err := plotter.NewLine(plotter.XYs{{X: from, Y: y}, {X: to, Y: y}})
	if err != nil {
		return err
	}
	l.LineStyle = levelStyle
	p.Add(l)
	return nil
}

// A note is a line of text at a point of a plot, its left end there, or drop lines below it.
// Unlike plotter.Labels, it does not make the plot shrink its data area to fit the text:
// notes are placed to stand inside it.
type note struct {
	x, y   float64
	text   string
	yAlign draw.YAlignment
	size   vg.Length
	drop   int
}

func (n note) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := textStyle(n.size)
	sty.YAlign = n.yAlign
	c.FillText(sty, vg.Point{X: trX(n.x), Y: trY(n.y) + 1 - vg.Length(n.drop)*sty.Height("x")}, n.text)
}

// addSeries draws the per-100 ms values ys of r as steps, cut to [from, to], in the look of
// r's strategy, with a marker in each interval whose value is positive: the markers of the
// strategies stand side by side in the interval (the k-th of n at its k-th place), so that
// strategies with the same value keep their markers apart. On a log scale, which has no
// zero, an interval of zero is a gap.
func addSeries(p *plot.Plot, r *result, ys []float64, from, to float64, k, n int, log bool) error {
	lk := looks[lookIndex(r.Strategy)%len(looks)]
	w := bin.Seconds()
	var steps plotter.XYs
	var marks plotter.XYs
	flush := func() error {
		if len(steps) == 0 {
			return nil
		}
		l, err := plotter.NewLine(steps)
		if err != nil {
			return err
		}
		l.LineStyle = lk.line()
		p.Add(l)
		steps = nil
		return nil
	}
	for j, y := range ys {
		x0 := r.SeriesStart + float64(j)*w
		x1 := min(x0+w, to)
		if x1 <= from || x0 >= to {
			continue
		}
		x0 = max(x0, from)
		if y <= 0 && log {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		steps = append(steps, plotter.XY{X: x0, Y: y}, plotter.XY{X: x1, Y: y})
		if y > 0 {
			at := r.SeriesStart + float64(j)*w + w*float64(k+1)/float64(n+1)
			if at > from && at < to {
				marks = append(marks, plotter.XY{X: at, Y: y})
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if len(marks) == 0 {
		return nil
	}
	s, err := plotter.NewScatter(marks)
	if err != nil {
		return err
	}
	s.GlyphStyle = draw.GlyphStyle{Color: lk.color, Radius: 3.5, Shape: lk.glyph}
	p.Add(s)
	return nil
}

// A legendEntry is a line of the legend: a sample of the line, with its marker if it has one,
// its name, and smaller, details.
type legendEntry struct {
	line         draw.LineStyle
	glyph        draw.GlyphDrawer // or nil
	name, detail string
}

// legend returns the legend's entries: the strategies, in the replay's order, with what the
// charted run and the runs measured; then the dotted levels.
func (rep *report) legend(cfg *config) []legendEntry {
	var es []legendEntry
	for _, s := range rep.Strategies {
		r := s.charted()
		detail := fmt.Sprintf("%s, peak %d, p99 %v", queries(r.Queries), r.PeakQueries, r.P99)
		if r.Timeouts > 0 {
			detail += fmt.Sprintf(", %d timeouts", r.Timeouts)
		}
		if s.Min.Queries != s.Max.Queries {
			detail += fmt.Sprintf("\nits %d runs: %s queries", len(s.Runs), span(strconv.Itoa(s.Min.Queries), strconv.Itoa(s.Max.Queries)))
		}
		lk := looks[lookIndex(s.Strategy)%len(looks)]
		es = append(es, legendEntry{line: lk.line(), glyph: lk.glyph, name: s.Strategy, detail: detail})
	}
	if capacity, shown := rep.capacity(cfg); shown {
		es = append(es, legendEntry{line: levelStyle, name: fmt.Sprintf("database capacity: %.0f queries per 100 ms", capacity),
			detail: fmt.Sprintf("upper panel: %d connections, %v a query", cfg.Pool, cfg.Latency)})
	}
	return append(es, legendEntry{line: levelStyle, name: fmt.Sprintf("request timeout: %v", cfg.Timeout),
		detail: "lower panel: a request gives up after it"})
}

// capacity returns the most queries the database's pool can begin in 100 ms, and whether it
// is near enough to the queries the charted runs sent to be drawn among them.
func (rep *report) capacity(cfg *config) (float64, bool) {
	peak := 1
	for _, s := range rep.Strategies {
		peak = max(peak, s.charted().PeakQueries)
	}
	capacity := float64(cfg.Pool) * float64(bin) / float64(cfg.Latency)
	return capacity, capacity <= 2*float64(peak)
}

// legendSwatch is the width of a legend entry's sample of its line.
const legendSwatch = vg.Length(34)

// drawLegend draws the entries in c, top down from drop below its top, each a sample of the
// line and its marker, then the strategy's name and, smaller, its figures. It returns the
// height where it ended.
func drawLegend(c draw.Canvas, entries []legendEntry, drop vg.Length) vg.Length {
	nameStyle, detailStyle := textStyle(11), textStyle(9.5)
	nameStyle.YAlign, detailStyle.YAlign = draw.YTop, draw.YTop
	y := c.Max.Y - drop
	headStyle := textStyle(10)
	headStyle.YAlign = draw.YTop
	c.FillText(headStyle, vg.Point{X: c.Min.X, Y: y}, "Strategies (the charted run's figures):")
	y -= headStyle.Height("x") + gap
	for _, e := range entries {
		mid := y - nameStyle.Height(e.name)/2
		c.StrokeLine2(e.line, c.Min.X, mid, c.Min.X+legendSwatch, mid)
		if e.glyph != nil {
			c.DrawGlyphNoClip(draw.GlyphStyle{Color: e.line.Color, Radius: 3.5, Shape: e.glyph}, vg.Point{X: c.Min.X + legendSwatch/2, Y: mid})
		}
		x := c.Min.X + legendSwatch + gap/2
		c.FillText(nameStyle, vg.Point{X: x, Y: y}, e.name)
		y -= nameStyle.Height(e.name) + 2
		c.FillText(detailStyle, vg.Point{X: x, Y: y}, e.detail)
		y -= detailStyle.Height(e.detail) + gap
	}
	return y
}

// readingNotes says how to read the chart, a paragraph a note.
func (rep *report) readingNotes() []string {
	notes := []string{"Each line is one run: of a strategy's runs, the one with the median number of queries."}
	if rep.Runs == 1 {
		notes[0] = "Each line is the one run of its strategy."
	}
	return append(notes,
		"Shaded: the viral burst; dashed: the update (t0). Both panels share the x-axis.",
		"Where lines coincide, the wider shows under the narrower; within each 100 ms, the markers of the "+
			"strategies stand side by side, so that equal values stay apart.",
	)
}

// drawNotes draws the notes in c from y down, each wrapped to c's width with room to spare
// for a wider font, a gap between them.
func drawNotes(c draw.Canvas, y vg.Length, notes []string) {
	sty := textStyle(9.5)
	sty.YAlign = draw.YTop
	width := (c.Max.X - c.Min.X) * 3 / 4
	for _, n := range notes {
		var lines []string
		line := ""
		for _, word := range strings.Fields(n) {
			if line != "" && sty.Width(line+" "+word) > width {
				lines = append(lines, line)
				line = ""
			}
			line = strings.TrimSpace(line + " " + word)
		}
		text := strings.Join(append(lines, line), "\n")
		c.FillText(sty, vg.Point{X: c.Min.X, Y: y}, text)
		y -= sty.Height(text) + gap/2
	}
}

// charted returns the run of s that the chart draws.
func (s *summary) charted() *result { return s.Runs[s.Charted] }

// drawOrder returns the strategies in the order their lines are drawn: the widest first, so
// that narrower lines on top leave them showing.
func (rep *report) drawOrder() []*summary {
	out := slices.Clone(rep.Strategies)
	width := func(s *summary) vg.Length { return looks[lookIndex(s.Strategy)%len(looks)].width }
	slices.SortStableFunc(out, func(a, b *summary) int { return cmp.Compare(width(b), width(a)) })
	return out
}

// xRange returns the span of the x-axis, in seconds from the update: from a little before the
// update to a little after the last query of any charted run could have kept a request
// waiting. A request that began later than a query's latency after the last query began waits
// for no query, so what the chart would show after that is the machine's noise, not the
// incident. The note, for the axis's label, says where the run was cut.
func (rep *report) xRange(cfg *config) (from, to float64, note string) {
	w := bin.Seconds()
	start, end, last := 0.0, w, 0.0
	for i, s := range rep.Strategies {
		r := s.charted()
		first, stop := r.SeriesStart, r.SeriesStart+float64(len(r.Series))*w
		if i == 0 {
			start, end = first, stop
		}
		start, end = min(start, first), max(end, stop)
		for j, n := range r.Series {
			if n > 0 {
				last = max(last, r.SeriesStart+float64(j+1)*w)
			}
		}
	}
	from = max(start, -3*w)
	to = math.Ceil((last+cfg.Latency.Seconds())/w-1e-9)*w + 2*w
	to = min(end, max(to, 5*w))
	if to < end-w/2 {
		note = fmt.Sprintf("\n(cut at %.1f s: no query began after %.1f s; the run went on to %.1f s)", to, last, end)
	}
	return from, to, note
}

// textStyle returns the chart's text style at size points.
func textStyle(size vg.Length) text.Style {
	return text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, size), Handler: plot.DefaultTextHandler}
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// queries says "1 query", "2 queries", ...
func queries(n int) string {
	if n == 1 {
		return "1 query"
	}
	return strconv.Itoa(n) + " queries"
}

// secondTicks marks every 100 ms, labelled every 100 ms on a short axis and every half
// second on a long one.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	every := 1
	if hi-lo > 2 {
		every = 5
	}
	var ticks []plot.Tick
	for i := int(math.Ceil(lo*10 - 1e-9)); float64(i) <= hi*10+1e-9; i++ {
		t := plot.Tick{Value: float64(i) / 10}
		if i%every == 0 {
			t.Label = strconv.FormatFloat(t.Value, 'f', 1, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// countTicks marks whole numbers: labelled at a step of 1, 2 or 5 times a power of ten that
// makes at most six labels, with a tick between them.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1.0
	for i := 0; (hi-lo)/step > 5; i++ {
		step *= []float64{2, 2.5, 2}[i%3] // 1, 2, 5, 10, 20, 50, ...
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		if half := v + step/2; step >= 2 && half <= hi {
			ticks = append(ticks, plot.Tick{Value: half})
		}
	}
	return ticks
}

// msTicks marks a log axis in milliseconds: its powers of ten, labelled with their unit, and
// their multiples between them.
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for i := 1.0; i < 10; i++ {
			if v := i * p; v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
				t := plot.Tick{Value: v}
				if i == 1 {
					t.Label = tickLabel(v)
				}
				ticks = append(ticks, t)
			}
		}
	}
	return ticks
}

// tickLabel labels a tick of v milliseconds: 10µs, 1ms, 100ms, 1s.
func tickLabel(v float64) string {
	d := time.Duration(math.Round(v * float64(time.Millisecond)))
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'g', -1, 64) + "s"
}

// lookIndex returns the look of a strategy, by its place among all strategies, so that a
// strategy keeps its look when others are left out.
func lookIndex(name string) int {
	for i, s := range strategies() {
		if s.Name == name {
			return i
		}
	}
	return 0
}
