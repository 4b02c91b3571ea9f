package report

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot geometry.
const (
	plotWidth  = 9 * vg.Inch
	plotHeight = 5.5 * vg.Inch
	// maxBins bounds the histogram plot's bins; wider runs get wider bins.
	maxBins = 2000
	// zeroCount is where empty bins are drawn: below the axis, so lines drop
	// to the axis between populated bins as in the OSADL plots.
	zeroCount = 0.1
	// percentile plot: points per decade of 1/(1-p), and the most decades.
	pointsPerDecade = 20
	maxDecades      = 9
)

var budgetColor = color.RGBA{R: 200, A: 255}

func plotTitle(s *Summary) string {
	var b strings.Builder
	b.WriteString("board " + orDash(s.Board) + ", load " + orDash(s.Load))
	if s.DurationS > 0 {
		b.WriteString(", " + time.Duration(s.DurationS*float64(time.Second)).Round(time.Second).String())
	}
	k := s.Kernel
	if len(k) > 70 {
		k = k[:70] + "…"
	}
	if k != "" || s.RT != "" {
		b.WriteString("\nkernel " + orDash(k) + "; " + orDash(s.RT))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// styleFor gives series i its colour; in an overlay of mkrt and cyclictest
// the cyclictest series are dashed so the two read apart at a glance.
func styleFor(i int, s Series, all []Series) draw.LineStyle {
	st := draw.LineStyle{Color: plotutil.Color(i), Width: vg.Points(1.2)}
	overlay := false
	for _, o := range all {
		overlay = overlay || o.Source != s.Source
	}
	if overlay && s.Source == "cyclictest" {
		st.Dashes = []vg.Length{vg.Points(5), vg.Points(2)}
	}
	return st
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	return p
}

// HistogramPlotOf draws the latency histogram: x latency in µs, y number of
// samples on a log axis, one line per series, and the budget as a vertical
// line when it falls on the plotted range.
func HistogramPlotOf(title string, series []Series, budget time.Duration) (*plot.Plot, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("report: %w", ErrNoSeries)
	}
	maxUS := 0.0
	for _, s := range series {
		if s.Hist.TotalCount() > 0 {
			maxUS = math.Max(maxUS, s.us(s.Hist.Max()))
		}
	}
	width := math.Max(1, math.Ceil(maxUS/maxBins))
	nbins := int(maxUS/width) + 1
	p := newPlot("Latency histogram: "+title, "latency (µs)", "number of samples")
	if width > 1 {
		p.X.Label.Text = fmt.Sprintf("latency (µs, %g µs bins)", width)
	}
	maxCount := 1.0
	for i, s := range series {
		counts := make([]float64, nbins)
		for _, bar := range s.Hist.Distribution() {
			if bar.Count == 0 {
				continue
			}
			b := int(s.us(bar.From) / width)
			if b >= nbins {
				b = nbins - 1
			}
			counts[b] += float64(bar.Count)
		}
		xys := make(plotter.XYs, nbins)
		for b, c := range counts {
			maxCount = math.Max(maxCount, c)
			if c == 0 {
				c = zeroCount
			}
			xys[b] = plotter.XY{X: float64(b) * width, Y: c}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("report: histogram plot: %w", err)
		}
		l.LineStyle = styleFor(i, s, series)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (max %s)", s.Label, fmtUS(s.us(s.Hist.Max()))), l)
	}
	xmax := float64(nbins) * width
	if b := usOf(budget); b > 0 {
		if b <= 3*math.Max(xmax, 1) {
			l, err := plotter.NewLine(plotter.XYs{{X: b, Y: 0.5}, {X: b, Y: maxCount * 100}})
			if err != nil {
				return nil, fmt.Errorf("report: histogram plot: %w", err)
			}
			l.LineStyle = budgetStyle()
			p.Add(l)
			p.Legend.Add("budget "+fmtUS(b), l)
			xmax = math.Max(xmax, b*1.05)
		} else {
			p.Legend.Add("budget " + fmtUS(b) + " (off scale)")
		}
	}
	p.X.Min, p.X.Max = 0, math.Max(xmax, 1)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0.8, maxCount*3
	return p, nil
}

// PercentilePlotOf draws the percentile distribution as HdrHistogram's
// plotter does: x the percentile on a 1/(1-p) log axis (90%, 99%, 99.9%...),
// y latency in µs.
func PercentilePlotOf(title string, series []Series, budget time.Duration) (*plot.Plot, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("report: %w", ErrNoSeries)
	}
	curves := make([]curve, 0, len(series))
	for i, s := range series {
		curves = append(curves, curve{
			label: fmt.Sprintf("%s (p99.9 %s)", s.Label, fmtUS(s.us(s.Hist.ValueAtQuantile(99.9)))),
			style: styleFor(i, s, series),
			xys:   percentileXYs(s),
		})
	}
	return percentilePlot("Latency by percentile: "+title, curves, budget)
}

// curve is one line of a percentile plot.
type curve struct {
	label string
	style draw.LineStyle
	xys   plotter.XYs
}

func percentilePlot(title string, curves []curve, budget time.Duration) (*plot.Plot, error) {
	p := newPlot(title, "percentile", "latency (µs)")
	xmax, ymax := 10.0, 1.0
	for _, c := range curves {
		if len(c.xys) == 0 {
			continue
		}
		for _, xy := range c.xys {
			xmax, ymax = math.Max(xmax, xy.X), math.Max(ymax, xy.Y)
		}
		l, err := plotter.NewLine(c.xys)
		if err != nil {
			return nil, fmt.Errorf("report: percentile plot: %w", err)
		}
		l.LineStyle = c.style
		l.StepStyle = plotter.PreStep
		p.Add(l)
		p.Legend.Add(c.label, l)
	}
	decades := int(math.Ceil(math.Log10(xmax)))
	xmax = math.Pow(10, float64(decades))
	if b := usOf(budget); b > 0 {
		if b <= 1.5*ymax {
			l, err := plotter.NewLine(plotter.XYs{{X: 1, Y: b}, {X: xmax, Y: b}})
			if err != nil {
				return nil, fmt.Errorf("report: percentile plot: %w", err)
			}
			l.LineStyle = budgetStyle()
			p.Add(l)
			p.Legend.Add("budget "+fmtUS(b), l)
			ymax = math.Max(ymax, b)
		} else {
			p.Legend.Add("budget " + fmtUS(b) + " (off scale)")
		}
	}
	p.Legend.Left, p.Legend.Top = true, true
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = percentileTicks(decades)
	p.X.Min, p.X.Max = 1, xmax
	p.Y.Min, p.Y.Max = 0, ymax*1.1
	return p, nil
}

func budgetStyle() draw.LineStyle {
	return draw.LineStyle{Color: budgetColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
}

// percentileXYs samples a series at 1/(1-p) = 10^(k/pointsPerDecade) up to
// its sample count, ending at its maximum.
func percentileXYs(s Series) plotter.XYs {
	n := float64(s.Hist.TotalCount())
	if n == 0 {
		return nil
	}
	var xys plotter.XYs
	for k := 0; k <= maxDecades*pointsPerDecade; k++ {
		x := math.Pow(10, float64(k)/pointsPerDecade)
		if x >= n {
			break
		}
		q := 100 * (1 - 1/x)
		xys = append(xys, plotter.XY{X: x, Y: s.us(s.Hist.ValueAtQuantile(q))})
	}
	return append(xys, plotter.XY{X: math.Max(n, 1.01), Y: s.us(s.Hist.Max())})
}

// percentileTicks labels 10^k as the percentile 1-10^-k: 0%, 90%, 99%, 99.9%...
func percentileTicks(decades int) plot.ConstantTicks {
	var ts plot.ConstantTicks
	for k := 0; k <= decades; k++ {
		x := math.Pow(10, float64(k))
		label := "0%"
		if k > 0 {
			label = strconv.FormatFloat(100*(1-1/x), 'f', max(0, k-2), 64) + "%"
		}
		ts = append(ts, plot.Tick{Value: x, Label: label})
		if k < decades {
			for m := 2.0; m < 10; m++ {
				ts = append(ts, plot.Tick{Value: x * m})
			}
		}
	}
	return ts
}

// savePlot renders p in the format named by file's extension.
func savePlot(p *plot.Plot, file string) error {
	ext := strings.TrimPrefix(filepath.Ext(file), ".")
	if ext == "" {
		return errors.New("report: plot file needs an extension (.svg, .png)")
	}
	wt, err := p.WriterTo(plotWidth, plotHeight, ext)
	if err != nil {
		return fmt.Errorf("report: %s: %w", file, err)
	}
	return writeFile(file, func(w *fileWriter) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
