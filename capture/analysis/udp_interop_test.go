//go:build interop

package analysis

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/quic"

	"github.com/mitmlab/mitmlab/capture/internal/capturetest"
)

// TestInteropUDPFlowsByKind: DTLS between openssl s_client and s_server, DNS
// from Go's resolver to a small responder on port 53 of a loopback
// address, and QUIC Initial packets from golang.org/x/net/quic, captured
// by tcpdump on lo. Each is a UDP flow of its kind, with tshark's
// datagram count (udp.stream) and tshark's dissector agreeing on the
// kind.
func TestInteropUDPFlowsByKind(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not installed")
	}
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=dtls.lab.test").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v: %s", err, out)
	}
	dnsAddr := "127.83.41.7:53"
	dnsConn, err := net.ListenPacket("udp", dnsAddr)
	if err != nil {
		t.Fatalf("DNS responder: %v", err)
	}
	defer dnsConn.Close()
	quicSink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer quicSink.Close()
	dtlsPort := freeUDPPort(t)
	quicPort := quicSink.LocalAddr().(*net.UDPAddr).Port
	stop := tcpdump(t, fmt.Sprintf("udp and (port 53 or port %d or port %d)", dtlsPort, quicPort))

	// DNS: answer every query NXDOMAIN.
	go func() {
		buf := make([]byte, 1500)
		for range 20 {
			n, from, err := dnsConn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				buf[2] |= 0x80 // a response
				buf[3] = buf[3]&0xf0 | 3
				dnsConn.WriteTo(buf[:n], from)
			}
		}
	}()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dnsAddr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = r.LookupHost(ctx, "bank.lab.test")
	cancel()
	if err == nil {
		t.Fatal("the responder answered NXDOMAIN, the lookup succeeded")
	}

	// DTLS 1.2: a handshake and a line of data.
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, openssl, "s_server", "-dtls1_2", "-accept", "127.0.0.1:"+strconv.Itoa(dtlsPort), "-cert", cert, "-key", key, "-quiet")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var out []byte
	for i := range 20 { // the server may not be listening yet
		cli := exec.CommandContext(ctx, openssl, "s_client", "-dtls1_2", "-connect", "127.0.0.1:"+strconv.Itoa(dtlsPort), "-servername", "dtls.lab.test")
		cli.Stdin = strings.NewReader("hello over DTLS\n")
		out, err = cli.CombinedOutput()
		if err == nil && strings.Contains(string(out), "Cipher is") {
			break
		}
		if i == 19 {
			t.Fatalf("openssl s_client -dtls1_2: %v: %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// QUIC: a client's Initial packets to a socket that never answers.
	ep, err := quic.Listen("udp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	_, err = ep.Dial(qctx, "udp", quicSink.LocalAddr().String(), &quic.Config{TLSConfig: &tls.Config{ServerName: "quic.lab.test", NextProtos: []string{"h3"}, MinVersion: tls.VersionTLS13}})
	qcancel()
	if err == nil {
		t.Fatal("a QUIC handshake with a socket that never answers succeeded")
	}
	ep.Close(context.Background())

	file := stop()
	rep := analyzeFile(t, file, nil)
	// tshark: per udp.stream, the datagrams and which dissector took them.
	tout, _ := capturetest.Tshark(t, "-r", file, "-T", "fields", "-E", "separator=|", "-e", "udp.stream", "-e", "frame.protocols")
	type ts struct {
		frames int
		protos string
	}
	var streams []*ts
	for _, line := range strings.Split(strings.TrimSpace(tout), "\n") {
		f := strings.Split(line, "|")
		id, err := strconv.Atoi(f[0])
		if err != nil || len(f) < 2 {
			continue
		}
		for len(streams) <= id {
			streams = append(streams, &ts{})
		}
		streams[id].frames++
		streams[id].protos += f[1] + " "
	}
	if len(rep.UDP) != len(streams) {
		t.Fatalf("%d UDP flows, tshark has %d udp.streams: %+v", len(rep.UDP), len(streams), rep.UDP)
	}
	kinds := map[string]int{}
	for i, u := range rep.UDP {
		s := streams[i]
		kinds[u.Kind]++
		want := "other"
		for _, k := range []string{"quic", "dtls", "dns"} {
			if strings.Contains(s.protos, ":"+k+" ") || strings.Contains(s.protos, ":"+k+":") {
				want = k
			}
		}
		if u.Packets != s.frames || u.Kind != want {
			t.Errorf("UDP flow %d %s → %s: %s, %d datagrams; tshark: %s, %d frames", u.ID, u.Client, u.Server, u.Kind, u.Packets, want, s.frames)
		}
		if (u.Kind == "quic" && u.Version != "1") || (u.Kind == "dtls" && u.Version != "1.0" && u.Version != "1.2") {
			t.Errorf("UDP flow %d: %s version %q", u.ID, u.Kind, u.Version)
		}
	}
	if kinds["dns"] == 0 || kinds["dtls"] == 0 || kinds["quic"] != 1 {
		t.Errorf("UDP flows by kind: %v; want dns, dtls (one flow per s_client try), one quic", kinds)
	}
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
