//go:build interop

package labs

// Interop: the report as a real browser draws it. Run with `make interop`;
// a missing chromium is a failure, not a skip.

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestInteropReportChromium renders reports in headless Chromium and looks
// at the pixels: the page is drawn with its own style sheet (the colours
// of a passed expectation, of the failed verdict and of the secret's
// highlight are there, so the CSP let the inline style through), and an
// embedded screenshot is drawn (so the CSP let the data: image through).
func TestInteropReportChromium(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Fatal("chromium is not installed; interop tests need it (.ci/run installs it with apt-get)")
	}

	// A distinctive colour for the embedded screenshot, found nowhere in
	// the style sheet.
	shotColour := color.RGBA{R: 0x12, G: 0xab, B: 0x34, A: 0xff}

	t.Run("fixture", func(t *testing.T) {
		f := newReportFixture(t)
		path := filepath.Join(f.out, "report.html")
		if err := WriteReport(path, f.run); err != nil {
			t.Fatal(err)
		}
		img := reportChromiumShot(t, chromium, path)
		for _, c := range []struct {
			what string
			rgb  color.RGBA
		}{
			{"the failed verdict's background", color.RGBA{R: 0xfc, G: 0xe8, B: 0xe6, A: 0xff}},
			{"a passed expectation's background", color.RGBA{R: 0xe6, G: 0xf4, B: 0xea, A: 0xff}},
			{"a differing certificate field's background", color.RGBA{R: 0xff, G: 0xf4, B: 0xe5, A: 0xff}},
			{"the secret's highlight", color.RGBA{R: 0xff, G: 0xd4, B: 0x3b, A: 0xff}},
		} {
			if n := reportCountColour(img, c.rgb); n < 50 {
				t.Errorf("%d pixels of %s (#%02x%02x%02x), want at least 50: was the style sheet applied?", n, c.what, c.rgb.R, c.rgb.G, c.rgb.B)
			}
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		out := t.TempDir()
		shot := image.NewRGBA(image.Rect(0, 0, 300, 80))
		for y := 0; y < 80; y++ {
			for x := 0; x < 300; x++ {
				shot.Set(x, y, shotColour)
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, shot); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, "page.png"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		run := &RunResult{Out: out, Started: time.Now(), Labs: []*Result{{
			Lab: "https-ok", Number: 2, Title: "HTTPS hides the password", Passed: true, Client: "chromium",
			Expectations: []Expectation{{ID: "no-password-on-wire", Text: "The wire never carried the password", OK: true}},
			Artifacts:    map[string]string{"page.png": "page.png"},
		}}}
		path := filepath.Join(out, "report.html")
		if err := WriteReport(path, run); err != nil {
			t.Fatal(err)
		}
		img := reportChromiumShot(t, chromium, path)
		if n := reportCountColour(img, shotColour); n < 300*80/2 {
			t.Errorf("%d pixels of the embedded screenshot's colour, want most of its 300×80: was the data: image drawn?", n)
		}
	})
}

// reportChromiumShot renders page in headless Chromium, 1200 pixels wide,
// and returns the screenshot after checking it is not blank.
func reportChromiumShot(t *testing.T, chromium, page string) image.Image {
	t.Helper()
	dir := t.TempDir()
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+shot, "--window-size=1200,2000",
		"file://"+filepath.ToSlash(page))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 2000 {
		t.Errorf("screenshot is %v, want 1200×2000", b)
	}
	// Blank means one colour: count the pixels unlike the top-left one.
	bg := img.At(0, 0)
	differ := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if !reportNear(img.At(x, y), bg) {
				differ++
			}
		}
	}
	if total := b.Dx() * b.Dy() / 4; differ < total/100 {
		t.Fatalf("screenshot is blank: %d of %d sampled pixels differ from the background", differ, total)
	}
	return img
}

func reportCountColour(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if reportNear(img.At(x, y), c) {
				n++
			}
		}
	}
	return n
}

// reportNear compares colours with a little tolerance for the browser's
// colour conversion.
func reportNear(a, b color.Color) bool {
	ar, ag, ab, _ := a.RGBA()
	br, bg, bb, _ := b.RGBA()
	d := func(x, y uint32) uint32 {
		x, y = x>>8, y>>8
		if x > y {
			return x - y
		}
		return y - x
	}
	return d(ar, br) <= 3 && d(ag, bg) <= 3 && d(ab, bb) <= 3
}
