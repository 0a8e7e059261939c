package analysis

import "testing"

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
