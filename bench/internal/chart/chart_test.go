package chart

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestChartsRender(t *testing.T) {
	dir := t.TempDir()
	series := []Series{
		{Name: "livepoll", X: []float64{2000, 6000, 18000}, Y: []float64{2e3, 2.1e3, 2e3}},
		{Name: "mizu", X: []float64{2000, 6000, 18000}, Y: []float64{37e3, 37.5e3, 37.6e3}},
	}
	line := filepath.Join(dir, "line.png")
	if err := Line(line, Chart{Title: "RSS per connection", XLabel: "connections", YLabel: "bytes", Series: series}); err != nil {
		t.Fatal(err)
	}
	bars := filepath.Join(dir, "bars.png")
	if err := Bars(bars, Chart{Title: "deliveries/s", Groups: []string{"closed loop"}, Series: []Series{{Name: "a", Y: []float64{80e3}}, {Name: "b", Y: []float64{50e3}}}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{line, bars} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if img.Bounds() != image.Rect(0, 0, width, height) {
			t.Fatalf("%s: bounds %v", path, img.Bounds())
		}
		// Each series' color appears (its line or bar was drawn).
		for i := range 2 {
			if !hasColor(img, palette[i]) {
				t.Errorf("%s: no pixel of series %d's color", path, i)
			}
		}
	}
}

func hasColor(img image.Image, want interface{ RGBA() (r, g, b, a uint32) }) bool {
	wr, wg, wb, _ := want.RGBA()
	b := img.Bounds()
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := left; x < width-right; x++ { // the plot area, not the legend
			r, g, bl, _ := img.At(x, y).RGBA()
			if r == wr && g == wg && bl == wb {
				n++
			}
		}
	}
	return n > 20
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ v, top float64 }{{37697, 40000}, {2111, 2500}, {1, 1}, {0, 1}, {93, 100}} {
		if top, ticks := niceScale(c.v); top != c.top || ticks[0] != 0 || ticks[len(ticks)-1] != top {
			t.Errorf("niceScale(%v) = %v %v, want top %v", c.v, top, ticks, c.top)
		}
	}
}
