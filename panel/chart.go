package panel

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// chart is one series drawn as an inline SVG: a line with a circle per
// point, or a bar per point. The panel draws its charts itself, on the
// server: no script library, nothing from a CDN, and the Content Security
// Policy stays as strict as it is.
type chart struct {
	ID     string // the svg element's id
	Title  string
	Unit   string // how values read: see formatValue
	Bars   bool
	Points []chartPoint
}

// chartPoint is one value with what it is of (a time, a build).
type chartPoint struct {
	Label string
	Value float64
}

// The drawing area inside the svg's viewBox, in its units.
const (
	chartW, chartH             = 640, 180
	chartLeft, chartRight      = 56, 8
	chartTop, chartBottom      = 10, 22
	chartPlotW, chartPlotH     = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	chartPointR                = 2.2
	chartBarGap                = 0.2 // share of a bar's slot left empty
	chartGridLines             = 2   // lines above the zero line
	chartLabelX, chartLabelPad = chartLeft - 6, 4
)

// SVG draws the chart. Every text it writes is escaped; the numbers are
// formatted here.
func (c chart) SVG() template.HTML {
	esc := template.HTMLEscapeString
	top := niceCeil(maxValue(c.Points))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart%s" viewBox="0 0 %d %d" role="img" aria-label="%s" data-points="%d">`,
		esc(c.ID), map[bool]string{true: " chart-bars", false: " chart-line"}[c.Bars], chartW, chartH, esc(c.Title), len(c.Points))
	for i := 0; i <= chartGridLines; i++ {
		v := top * float64(i) / chartGridLines
		y := yOf(v, top)
		fmt.Fprintf(&b, `<line class="chart-grid" x1="%d" x2="%d" y1="%s" y2="%s"/>`, chartLeft, chartW-chartRight, num(y), num(y))
		fmt.Fprintf(&b, `<text class="chart-axis" x="%d" y="%s" text-anchor="end">%s</text>`, chartLabelX, num(y+chartLabelPad), esc(formatValue(v, c.Unit)))
	}
	if n := len(c.Points); n > 0 {
		first, last := c.Points[0].Label, c.Points[n-1].Label
		fmt.Fprintf(&b, `<text class="chart-axis" x="%d" y="%d" text-anchor="start">%s</text>`, chartLeft, chartH-6, esc(first))
		if n > 1 {
			fmt.Fprintf(&b, `<text class="chart-axis" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-chartRight, chartH-6, esc(last))
		}
	}
	if c.Bars {
		c.bars(&b, top)
	} else {
		c.line(&b, top)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from escaped text and formatted numbers only
}

func (c chart) line(b *strings.Builder, top float64) {
	n := len(c.Points)
	xOf := func(i int) float64 {
		if n == 1 {
			return chartLeft + chartPlotW/2
		}
		return chartLeft + float64(i)*chartPlotW/float64(n-1)
	}
	pts := make([]string, n)
	for i, p := range c.Points {
		pts[i] = num(xOf(i)) + "," + num(yOf(p.Value, top))
	}
	fmt.Fprintf(b, `<polyline class="chart-path" fill="none" points="%s"/>`, strings.Join(pts, " "))
	for i, p := range c.Points {
		fmt.Fprintf(b, `<circle class="chart-point" cx="%s" cy="%s" r="%s"><title>%s</title></circle>`,
			num(xOf(i)), num(yOf(p.Value, top)), num(chartPointR), c.tooltip(p))
	}
}

func (c chart) bars(b *strings.Builder, top float64) {
	if len(c.Points) == 0 {
		return
	}
	slot := float64(chartPlotW) / float64(len(c.Points))
	for i, p := range c.Points {
		y := yOf(p.Value, top)
		fmt.Fprintf(b, `<rect class="chart-bar" x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>`,
			num(chartLeft+float64(i)*slot+slot*chartBarGap/2), num(y), num(slot*(1-chartBarGap)), num(chartTop+chartPlotH-y), c.tooltip(p))
	}
}

func (c chart) tooltip(p chartPoint) string {
	return template.HTMLEscapeString(p.Label + ": " + formatValue(p.Value, c.Unit))
}

// yOf is the vertical position of v on an axis from 0 to top.
func yOf(v, top float64) float64 {
	return chartTop + chartPlotH - v/top*chartPlotH
}

func maxValue(points []chartPoint) float64 {
	m := 0.0
	for _, p := range points {
		if p.Value > m && !math.IsInf(p.Value, 0) {
			m = p.Value
		}
	}
	return m
}

// niceCeil rounds the top of an axis up to 1, 2 or 5 times a power of
// ten, so the labels read well; an empty chart gets an axis up to 1.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}

// formatValue writes a value in its unit: "%" for a share from 0 to 1,
// "ms" and "s" for times, anything else after the number.
func formatValue(v float64, unit string) string {
	switch unit {
	case "%":
		return trimFloat(v*100) + "%"
	case "ms", "s":
		return trimFloat(v) + " " + unit
	case "":
		return trimFloat(v)
	}
	return trimFloat(v) + " " + unit
}

// trimFloat writes v with at most two decimals, none when it is whole.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// num writes a coordinate.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
