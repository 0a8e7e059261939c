package capture_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

const embedKeys = "CLIENT_RANDOM 0102030405060708091011121314151617181920212223242526272829303132 " +
	"aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899\n"

// pcapFile writes a pcap of the given byte order and resolution holding
// packets at times ts.
func pcapFile(order binary.ByteOrder, nanos bool, link capture.LinkType, ts []time.Time, data [][]byte) []byte {
	var b bytes.Buffer
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	hdr := make([]byte, 24)
	order.PutUint32(hdr[0:], magic)
	order.PutUint16(hdr[4:], 2)
	order.PutUint16(hdr[6:], 4)
	order.PutUint32(hdr[16:], 65535)
	order.PutUint32(hdr[20:], uint32(link))
	b.Write(hdr)
	for i, p := range data {
		rec := make([]byte, 16)
		frac := uint32(ts[i].Nanosecond() / 1000)
		if nanos {
			frac = uint32(ts[i].Nanosecond())
		}
		order.PutUint32(rec[0:], uint32(ts[i].Unix()))
		order.PutUint32(rec[4:], frac)
		order.PutUint32(rec[8:], uint32(len(p)))
		order.PutUint32(rec[12:], uint32(len(p)+7))
		b.Write(rec)
		b.Write(p)
	}
	return b.Bytes()
}

// TestEmbedSecrets: a pcap of every byte order and resolution, and a
// pcapng, come out as pcapng whose packets are the input's (time, bytes,
// lengths, link type) with the key log readable as secrets.
func TestEmbedSecrets(t *testing.T) {
	seg := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("hello"))
	seg2 := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.2:2"), netip.MustParseAddrPort("10.0.0.1:1"), []byte("hi"))
	ts := []time.Time{time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC), time.Date(2026, 12, 2, 10, 0, 1, 5000, time.UTC)}
	inputs := map[string][]byte{}
	for _, o := range []struct {
		name  string
		order binary.ByteOrder
	}{{"le", binary.LittleEndian}, {"be", binary.BigEndian}} {
		for _, nanos := range []bool{false, true} {
			name := o.name + map[bool]string{false: "-micro", true: "-nano"}[nanos]
			inputs["pcap-"+name] = pcapFile(o.order, nanos, capture.LinkRaw, ts, [][]byte{seg, seg2})
		}
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			res, err := capture.EmbedSecrets(&out, bytes.NewReader(in), []byte(embedKeys))
			if err != nil {
				t.Fatal(err)
			}
			if res.Packets != 2 || res.Sections != 1 || res.From != capture.PCAP {
				t.Errorf("EmbedSecrets = %+v, want 2 packets, 1 section, from pcap", res)
			}
			want := readAll(t, in)
			r, err := capture.NewReader(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if r.Format() != capture.PCAPNG {
				t.Fatalf("output format %v, want pcapng", r.Format())
			}
			for i, wp := range want {
				p, err := r.Next()
				if err != nil {
					t.Fatalf("packet %d: %v", i+1, err)
				}
				if !p.Time.Equal(wp.Time) || !bytes.Equal(p.Data, wp.Data) || p.OrigLen != wp.OrigLen || p.LinkType != wp.LinkType {
					t.Errorf("packet %d = %v %d bytes (orig %d, %v), want %v %d (orig %d, %v)", i+1,
						p.Time, len(p.Data), p.OrigLen, p.LinkType, wp.Time, len(wp.Data), wp.OrigLen, wp.LinkType)
				}
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("after the packets: %v, want EOF", err)
			}
			if s := r.Secrets(); len(s) != 1 || string(s[0]) != embedKeys {
				t.Errorf("secrets = %q, want the key log", s)
			}
		})
	}
	t.Run("pcapng keeps its blocks", func(t *testing.T) {
		var b bytes.Buffer
		w, _ := capture.NewWriter(&b, capture.PCAPNG)
		w.WriteDecryptionSecrets([]byte("CLIENT_RANDOM 00 11\n"))
		w.WritePacket(gopacketCI(ts[0], len(seg)), seg)
		w.Close()
		var out bytes.Buffer
		res, err := capture.EmbedSecrets(&out, bytes.NewReader(b.Bytes()), []byte(embedKeys))
		if err != nil || res.Packets != 1 || res.From != capture.PCAPNG {
			t.Fatalf("EmbedSecrets = %+v, %v; want 1 packet from pcapng", res, err)
		}
		// Every input byte is in the output, in order, after the new block.
		if !bytes.Equal(out.Bytes()[len(out.Bytes())-(b.Len()-ngSHBLen(b.Bytes())):], b.Bytes()[ngSHBLen(b.Bytes()):]) {
			t.Error("the blocks after the section header are not copied as they were")
		}
		r, _ := capture.NewReader(bytes.NewReader(out.Bytes()))
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
		if s := r.Secrets(); len(s) != 2 || string(s[0]) != embedKeys {
			t.Errorf("secrets = %q, want the new key log first, then the old", s)
		}
	})
}

func gopacketCI(ts time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: ts, CaptureLength: n, Length: n}
}

func ngSHBLen(b []byte) int { return int(binary.LittleEndian.Uint32(b[4:])) }

func readAll(t *testing.T, in []byte) []capture.Packet {
	r, err := capture.NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out []capture.Packet
	for {
		p, err := r.Next()
		if err != nil {
			return out
		}
		p.Data = bytes.Clone(p.Data)
		out = append(out, p)
	}
}

// TestEmbedSecretsBadInput: what is not a capture, or a capture cut
// short, is an error, and the file named as the copy is left as it was
// with no temporary file beside it.
func TestEmbedSecretsBadInput(t *testing.T) {
	dir := t.TempDir()
	seg := capturetest.TCPSegment(t, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("hello"))
	good := pcapFile(binary.LittleEndian, false, capture.LinkRaw, []time.Time{time.Unix(1, 0)}, [][]byte{seg})
	out := filepath.Join(dir, "out.pcapng")
	os.WriteFile(out, []byte("previous"), 0o600)
	for name, in := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("this is not a capture at all, just some words"),
		"cut":        good[:len(good)-3],
		"header cut": good[:30],
	} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(dir, "in")
			os.WriteFile(src, in, 0o600)
			if _, err := capture.EmbedSecretsFile(out, src, []byte(embedKeys)); err == nil {
				t.Fatal("EmbedSecretsFile = nil error, want one")
			} else if !strings.Contains(err.Error(), "capture: embed:") {
				t.Errorf("error %q does not say what failed", err)
			}
			if b, _ := os.ReadFile(out); string(b) != "previous" {
				t.Errorf("out = %q, want it unchanged", b)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("directory holds %d files, want in and out only (no temporary file left)", len(ents))
			}
		})
	}
	if _, err := capture.EmbedSecrets(io.Discard, bytes.NewReader(good), nil); err == nil {
		t.Error("EmbedSecrets with no key log = nil error, want one")
	}
	if _, err := capture.EmbedSecretsFile(out, filepath.Join(dir, "missing"), []byte(embedKeys)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing input: %v, want not-exist", err)
	}
}

func TestKeyLogLines(t *testing.T) {
	in := "# a comment\n\n" + embedKeys + "garbage line\nCLIENT_RANDOM zz 11\r\nSERVER_TRAFFIC_SECRET_0 0011 2233\r\n"
	got, n := capture.KeyLogLines([]byte(in))
	if want := embedKeys + "SERVER_TRAFFIC_SECRET_0 0011 2233\n"; string(got) != want || n != 2 {
		t.Errorf("KeyLogLines = %q, %d; want %q, 2", got, n, want)
	}
}
