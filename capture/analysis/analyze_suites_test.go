package analysis

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/capture/tlswire"
)

// sessionPcap turns a recorded TLS session of capture/tlswire/testdata/tls
// (one "c HEX" or "s HEX" chunk a line) into a pcap, and returns it with
// the session's key log.
func sessionPcap(t *testing.T, name string) (pcap, keyLog []byte) {
	t.Helper()
	base := filepath.Join("..", "tlswire", "testdata", "tls", name)
	f, err := os.Open(base + ".session")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var file bytes.Buffer
	w, err := capture.NewWriter(&file, capture.PCAP)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:50000"), netip.MustParseAddrPort("10.0.0.2:443"), at)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		dir := capture.ClientToServer
		if line[0] == 's' {
			dir = capture.ServerToClient
		}
		data, err := hex.DecodeString(line[2:])
		if err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Millisecond)
		if err := conv.Write(dir, data, at); err != nil {
			t.Fatal(err)
		}
	}
	conv.Close(capture.ClientToServer, at.Add(time.Millisecond))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	keyLog, err = os.ReadFile(base + ".keylog")
	if err != nil {
		t.Fatal(err)
	}
	return file.Bytes(), keyLog
}

var fixturePassword = Secret{Name: "password", Value: "correct-horse-battery-staple"}

// TestAnalyzeUnsupportedSuite: a capture whose key log has the secrets of
// a Camellia connection does not blame the keys: the verdict names the
// version and suite, and the report counts it under unsupported_suite,
// not without_keys. Without the key log the verdict is the usual one.
func TestAnalyzeUnsupportedSuite(t *testing.T) {
	pcap, keyLog := sessionPcap(t, "openssl-tls12-camellia128-sha-unsupported")
	rep := analyzeBytes(t, pcap, keyLog, fixturePassword)
	want := "password: NOT visible on the wire (only ciphertext); TLS 1.2 with TLS_RSA_WITH_CAMELLIA_128_CBC_SHA: " +
		"the key log has this connection's secrets, but this engine does not decrypt that suite (connection 0)"
	if len(rep.Secrets) != 1 || rep.Secrets[0].Verdict != want {
		t.Errorf("verdicts %+v, want %q", rep.Secrets, want)
	}
	if rep.Keys.UnsupportedSuite != 1 || rep.Keys.WithoutKeys != 0 || rep.Keys.Decrypted != 0 {
		t.Errorf("keys %+v, want unsupported_suite 1, without_keys 0", rep.Keys)
	}
	if c := rep.Connections[0]; c.TLS == nil || !c.TLS.UnsupportedSuite || !c.TLS.KeysFound {
		t.Errorf("connection TLS %+v", c.TLS)
	}
	rep = analyzeBytes(t, pcap, nil, fixturePassword)
	if v := rep.Secrets[0].Verdict; !strings.HasSuffix(v, "without the session keys it cannot be read") || rep.Keys.WithoutKeys != 1 || rep.Keys.UnsupportedSuite != 0 {
		t.Errorf("without keys: verdict %q, keys %+v", v, rep.Keys)
	}
}

// TestAnalyzeCBCCCMPSK: the password in OpenSSL sessions of CBC, CCM and
// PSK suites is found once decrypted with their key logs, and in the PSK
// one with only the PSK, with the verdict saying so.
func TestAnalyzeCBCCCMPSK(t *testing.T) {
	for _, name := range []string{
		"openssl-tls10-aes128-sha-etm", "openssl-tls11-ecdhe-rsa-aes256-sha-no-etm",
		"openssl-tls12-ecdhe-rsa-aes128-sha256-etm", "openssl-tls12-rsa-aes128-ccm",
		"openssl-tls13-aes128-ccm", "openssl-tls12-psk-aes128-cbc-sha",
	} {
		pcap, keyLog := sessionPcap(t, name)
		rep := analyzeBytes(t, pcap, keyLog, fixturePassword)
		if rep.Secrets[0].Found != "decrypted" || rep.Keys.Decrypted != 1 {
			t.Errorf("%s: %q, keys %+v", name, rep.Secrets[0].Verdict, rep.Keys)
		}
	}
	pcap, _ := sessionPcap(t, "openssl-tls12-psk-aes128-cbc-sha")
	r, err := capture.NewReader(bytes.NewReader(pcap))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := tlswire.ParseKeyLog(nil)
	psk, _ := hex.DecodeString("6d69746d6c61622d746573742d70736b2d6b6579")
	keys.AddPSK(psk)
	rep, err := Analyze(r, Options{Keys: keys, Secrets: []Secret{fixturePassword}})
	if err != nil {
		t.Fatal(err)
	}
	want := "password: NOT visible on the wire (only ciphertext); visible once decrypted with the pre-shared key, connection 0 (frame "
	if !strings.HasPrefix(rep.Secrets[0].Verdict, want) || rep.Keys.PSKs != 1 || rep.Connections[0].TLS.KeySource != tlswire.KeySourcePSK {
		t.Errorf("PSK: verdict %q, keys %+v", rep.Secrets[0].Verdict, rep.Keys)
	}
}
