//go:build linux

package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantStatus int
		wantBody   string
		wantClose  bool
		wantErr    string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, ""},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n", 200, "hello", false, ""},
		{"interim 100 skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 201, "ok", false, ""},
		{"connection close, no length", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof", 200, "until eof", true, ""},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, "x", true, ""},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", 200, "x", false, ""},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 200, "", false, "body cut at 0 of 10 bytes"},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", 0, "", false, "not an HTTP/1.x status line"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "", false, "bad Content-Length"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, "", false, "bad chunk size"},
		{"cut in headers", "HTTP/1.1 200 OK\r\nContent-Len", 0, "", false, "reading headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			var f framing
			status, err := readHead(br, &f)
			var body bytes.Buffer
			if err == nil {
				_, err = readBody(br, f, &body)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("read(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read(%q) error = %v", tt.in, err)
			}
			if status != tt.wantStatus || body.String() != tt.wantBody || f.close != tt.wantClose {
				t.Errorf("read(%q) = %d %q close=%v, want %d %q close=%v", tt.in, status, body.String(), f.close, tt.wantStatus, tt.wantBody, tt.wantClose)
			}
		})
	}
}

// FuzzReadResponse: the parser reads whatever a proxy under test sends;
// it may fail, never panic or loop.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nx"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		var fr framing
		if _, err := readHead(br, &fr); err == nil {
			n, _ := readBody(br, fr, nil)
			if n < 0 || n > int64(len(in)) {
				t.Fatalf("readBody counted %d bytes of a %d-byte input", n, len(in))
			}
		}
	})
}

func TestSizeParam(t *testing.T) {
	tests := []struct {
		q    string
		want int64
		ok   bool
	}{
		{"n=100", 100, true},
		{"a=1&n=65536", 65536, true},
		{"n=", 0, false},
		{"n=-1", 0, false},
		{"n=99999999999999", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := sizeParam(tt.q)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("sizeParam(%q) = %d, %v; want %d, ok %v", tt.q, got, err, tt.want, tt.ok)
		}
	}
}

func TestTextBlock(t *testing.T) {
	b := textBlock()
	if len(b) != blockSize {
		t.Fatalf("len(textBlock()) = %d, want %d", len(b), blockSize)
	}
	seen := map[byte]bool{}
	lines := 0
	for i, c := range b {
		if c == '\n' {
			lines++
		} else if c != '\t' && (c < 0x20 || c > 0x7e) {
			t.Fatalf("textBlock()[%d] = %#x, want printable ASCII", i, c)
		}
		seen[c] = true
	}
	if len(seen) < 40 || lines < blockSize/100 {
		t.Errorf("textBlock() has %d distinct bytes and %d lines, want text: at least 40 and %d", len(seen), lines, blockSize/100)
	}
	if !bytes.Equal(b, textBlock()) {
		t.Error("textBlock() differs between calls, want the same block every run")
	}
}

func TestCommas(t *testing.T) {
	for v, want := range map[float64]string{0: "0.0", 95.04: "95.0", 100: "100", 1248: "1,248", 40535.4: "40,535", 1234567: "1,234,567"} {
		if got := commas(v); got != want {
			t.Errorf("commas(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestExpandScenarios(t *testing.T) {
	got, err := expandScenarios("rss, cpu,gib")
	if err != nil || strings.Join(got, ",") != "ka100,ka1m,gib" {
		t.Errorf("expandScenarios(rss, cpu,gib) = %v, %v; want [ka100 ka1m gib] in table order", got, err)
	}
	if _, err := expandScenarios("ka100,nope"); err == nil || !strings.Contains(err.Error(), "choose from") {
		t.Errorf("expandScenarios(nope) error = %v, want one that lists the choices", err)
	}
}
