package analysis

import (
	"math"
	"testing"
)

// TestCountBytes: the four-table count equals one increment per byte, at
// every length around the switch and the table rounds, and adds to what
// the histogram held.
func TestCountBytes(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4095, 4096, 4097, 4098, 4099, 10000, 70001} {
		data := make([]byte, n)
		x := uint32(n) + 7
		for i := range data {
			x = x*1664525 + 1013904223
			data[i] = byte(x >> 24)
			if i%7 == 0 {
				data[i] = 0 // runs of one value too
			}
		}
		var got, want [256]uint64
		got[5], want[5] = 3, 3
		countBytes(&got, data)
		for _, b := range data {
			want[b]++
		}
		if got != want {
			t.Errorf("%d bytes: histogram differs", n)
		}
	}
}

// TestEntropyFormula: the table form gives -Σ p log2 p to the reported
// precision.
func TestEntropyFormula(t *testing.T) {
	x := uint32(1)
	for round := 0; round < 200; round++ {
		var h [256]uint64
		for i := range h {
			x = x*1664525 + 1013904223
			switch round % 3 {
			case 0:
				h[i] = uint64(x >> 20) // small counts: the table
			case 1:
				h[i] = uint64(x >> 8) // large ones: Log2
			default:
				if i%5 == 0 {
					h[i] = uint64(x >> 24)
				}
			}
		}
		var n, want float64
		for _, c := range h {
			n += float64(c)
		}
		for _, c := range h {
			if c > 0 {
				p := float64(c) / n
				want -= p * math.Log2(p)
			}
		}
		if got := entropy(&h); math.Abs(got-want) > 0.0006 {
			t.Fatalf("round %d: entropy %v, want %v", round, got, want)
		}
	}
}
