package marionette

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestReadFrame(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: `2:{}`, want: `{}`},
		{in: `50:{"applicationType":"gecko","marionetteProtocol":3}`, want: `{"applicationType":"gecko","marionetteProtocol":3}`},
		{in: `0:`, want: ``},
		{in: `:{}`, err: "unexpected byte"},
		{in: `x:{}`, err: "unexpected byte"},
		{in: `-2:{}`, err: "unexpected byte"},
		{in: `1234567890:`, err: "unexpected byte"},
		{in: `99999999:`, err: "more than"},
		{in: `5:{}`, err: "unexpected EOF"},
		{in: `12`, err: "unexpected EOF"},
		{in: ``, err: "EOF"},
	} {
		got, err := ReadFrame(bufio.NewReader(strings.NewReader(tc.in)))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ReadFrame(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || string(got) != tc.want):
			t.Errorf("ReadFrame(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestWriteFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	msgs := []string{`[0,1,"WebDriver:NewSession",{}]`, ``, `[0,2,"WebDriver:Navigate",{"url":"https://bank.lab.test:8443/é"}]`}
	for _, m := range msgs {
		if err := WriteFrame(&buf, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(buf.String(), `31:[0,1,`) {
		t.Errorf("WriteFrame wrote %q, want the length in bytes first", buf.String())
	}
	r := bufio.NewReader(&buf)
	for _, m := range msgs {
		got, err := ReadFrame(r)
		if err != nil || string(got) != m {
			t.Errorf("ReadFrame() = %q, %v; want %q", got, err, m)
		}
	}
}

func TestParseReply(t *testing.T) {
	id, rep, err := parseReply([]byte(`[1,7,null,{"value":"https://bank.lab.test/"}]`))
	if err != nil || id != 7 || string(rep.err) != "null" || string(rep.result) != `{"value":"https://bank.lab.test/"}` {
		t.Errorf("parseReply(success) = %d, %q %q, %v", id, rep.err, rep.result, err)
	}
	id, rep, err = parseReply([]byte(`[1,8,{"error":"insecure certificate","message":"","stacktrace":""},null]`))
	if err != nil || id != 8 || !strings.Contains(string(rep.err), "insecure certificate") {
		t.Errorf("parseReply(error) = %d, %q, %v", id, rep.err, err)
	}
	for _, bad := range []string{`[0,1,"WebDriver:Navigate",{}]`, `[1,-1,null,null]`, `[1,1,null]`, `{}`, `[1,"a",null,null]`} {
		if _, _, err := parseReply([]byte(bad)); err == nil {
			t.Errorf("parseReply(%s) = nil error, want one", bad)
		}
	}
}

// FuzzReadFrame: whatever arrives on the socket, the reader returns a frame
// no longer than MaxFrame or an error, and never panics.
func FuzzReadFrame(f *testing.F) {
	for _, s := range []string{`2:{}`, `0:`, `50:{"applicationType":"gecko","marionetteProtocol":3}`, `9:[1,1,null`, `:`, `99999999999:`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			frame, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(frame) > MaxFrame {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			parseReply(frame)
		}
	})
}
