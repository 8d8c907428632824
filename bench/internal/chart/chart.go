// Package chart draws the benchmark's PNG charts: line charts (a value against connection
// count, one line per implementation) and grouped bar charts. It is deliberately small —
// axes with round tick values, a legend, the 7x13 bitmap font — so the benchmark needs no
// plotting library.
package chart

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one implementation's values: points (X[i], Y[i]) for a line chart, or Y[i]
// for group i of a bar chart.
type Series struct {
	Name string
	X, Y []float64
}

// Chart describes one picture.
type Chart struct {
	Title  string
	XLabel string // line charts only
	YLabel string
	Groups []string // bar charts: the group names, one per Y value of each series
	Series []Series
}

const (
	width, height            = 960, 540
	left, right, top, bottom = 90, 180, 50, 60
)

// palette gives each series a color by its position.
var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xff, 0x7f, 0x0e, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
	{0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
}

var (
	black = color.RGBA{0, 0, 0, 0xff}
	grid  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
)

// canvas is the image with the plot area's scales.
type canvas struct {
	img                *image.RGBA
	x0, x1, y0, y1     float64 // data range
	px0, px1, py0, py1 int     // plot area in pixels (py0 is the bottom)
	xTicks, yTicks     []float64
}

func newCanvas(c Chart) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	cv := &canvas{img: img, px0: left, px1: width - right, py0: height - bottom, py1: top}
	cv.text(left, 18, c.Title, black)
	cv.text(8, top-10, c.YLabel, black)
	return cv
}

func (cv *canvas) sx(x float64) int {
	return cv.px0 + int(math.Round((x-cv.x0)/(cv.x1-cv.x0)*float64(cv.px1-cv.px0)))
}

func (cv *canvas) sy(y float64) int {
	return cv.py0 - int(math.Round((y-cv.y0)/(cv.y1-cv.y0)*float64(cv.py0-cv.py1)))
}

func (cv *canvas) text(x, y int, s string, col color.Color) {
	d := font.Drawer{Dst: cv.img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(s string) int { return 7 * len(s) }

func (cv *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(cv.img, image.Rect(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), image.NewUniform(col), image.Point{}, draw.Src)
}

// line draws a 2-pixel line.
func (cv *canvas) line(x0, y0, x1, y1 int, col color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		cv.rect(x0, y0, x0+2, y0+2, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func (cv *canvas) axes(xlabel string) {
	for _, t := range cv.yTicks {
		y := cv.sy(t)
		cv.rect(cv.px0, y, cv.px1, y+1, grid)
		s := label(t)
		cv.text(cv.px0-8-textWidth(s), y+4, s, black)
	}
	for _, t := range cv.xTicks {
		x := cv.sx(t)
		cv.rect(x, cv.py0, x+1, cv.py0+5, black)
		s := label(t)
		cv.text(x-textWidth(s)/2, cv.py0+20, s, black)
	}
	cv.rect(cv.px0, cv.py1, cv.px0+1, cv.py0, black)
	cv.rect(cv.px0, cv.py0, cv.px1, cv.py0+1, black)
	if xlabel != "" {
		cv.text((cv.px0+cv.px1-textWidth(xlabel))/2, height-16, xlabel, black)
	}
}

func (cv *canvas) legend(series []Series) {
	for i, s := range series {
		y := cv.py1 + 10 + 22*i
		cv.rect(cv.px1+20, y-9, cv.px1+34, y+1, palette[i%len(palette)])
		cv.text(cv.px1+42, y, s.Name, black)
	}
}

// Line writes a line chart of c to path. Axes start at zero.
func Line(path string, c Chart) error {
	cv := newCanvas(c)
	xmax, ymax := 0.0, 0.0
	for _, s := range c.Series {
		for i := range s.X {
			xmax, ymax = math.Max(xmax, s.X[i]), math.Max(ymax, s.Y[i])
		}
	}
	cv.x1, cv.xTicks = niceScale(xmax)
	cv.y1, cv.yTicks = niceScale(ymax)
	cv.axes(c.XLabel)
	for i, s := range c.Series {
		col := palette[i%len(palette)]
		for k := range s.X {
			x, y := cv.sx(s.X[k]), cv.sy(s.Y[k])
			cv.rect(x-3, y-3, x+4, y+4, col)
			if k > 0 {
				cv.line(cv.sx(s.X[k-1]), cv.sy(s.Y[k-1]), x, y, col)
			}
		}
	}
	cv.legend(c.Series)
	return cv.save(path)
}

// Bars writes a grouped bar chart of c to path: one group per c.Groups entry, one bar per
// series in each group, the value printed above each bar.
func Bars(path string, c Chart) error {
	cv := newCanvas(c)
	ymax := 0.0
	for _, s := range c.Series {
		for _, v := range s.Y {
			if !math.IsNaN(v) { // NaN: no bar
				ymax = math.Max(ymax, v)
			}
		}
	}
	cv.x1 = 1
	cv.y1, cv.yTicks = niceScale(ymax)
	cv.axes("")
	groupW := float64(cv.px1-cv.px0) / float64(max(1, len(c.Groups)))
	barW := int(groupW * 0.8 / float64(max(1, len(c.Series))))
	for g, name := range c.Groups {
		gx := cv.px0 + int(float64(g)*groupW+groupW*0.1)
		cv.text(cv.px0+int(float64(g)*groupW+groupW/2)-textWidth(name)/2, cv.py0+20, name, black)
		for i, s := range c.Series {
			if g >= len(s.Y) || math.IsNaN(s.Y[g]) {
				continue
			}
			x := gx + i*barW
			y := cv.sy(s.Y[g])
			cv.rect(x+1, y, x+barW-1, cv.py0, palette[i%len(palette)])
			v := label(s.Y[g])
			if barW >= textWidth(v) {
				cv.text(x+(barW-textWidth(v))/2, y-4, v, black)
			}
		}
	}
	cv.legend(c.Series)
	return cv.save(path)
}

func (cv *canvas) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, cv.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// niceScale returns an axis maximum ≥ v and ticks at a round step (1, 2 or 5 × 10^k).
func niceScale(v float64) (float64, []float64) {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		v = 1
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	top := math.Ceil(v/step) * step
	var ticks []float64
	for t := 0.0; t <= top+step/2; t += step {
		ticks = append(ticks, t)
	}
	return top, ticks
}

// label prints a value short: 1.5k, 20k, 3.2M, 0.25.
func label(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	case a >= 100 || a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return trim(v)
	}
}

func trim(v float64) string { return fmt.Sprintf("%.3g", v) }

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
