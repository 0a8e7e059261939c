//go:build interop

package labs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
)

// TestInteropTamperTshark re-checks lab 10 with tshark, for each victim:
// with keys.log, the bank's bad_record_mac alert to the relay's connection;
// without it, no alert at all (TLS 1.3 hides even the record type); and
// the HTTP form as the victim sent it and as the bank received it.
func TestInteropTamperTshark(t *testing.T) {
	needTool(t, "curl")
	if _, err := FindChromium(); err != nil {
		t.Fatal(err)
	}
	lab, err := Find("tamper")
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []ClientKind{ClientGo, ClientCurl, ClientChromium} {
		t.Run(string(client), func(t *testing.T) {
			_, out := runLabPassing(t, lab, client)
			dir := filepath.Join(out, "tamper")
			wire, keys := filepath.Join(dir, "wire.pcapng"), filepath.Join(dir, "keys.log")
			var flip, rewrite *RelayEvent
			events, err := ReadRelayLog(filepath.Join(dir, "relay.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				switch e.What {
				case "flip":
					flip = &e
				case "rewrite":
					rewrite = &e
				}
			}
			if flip == nil || rewrite == nil {
				t.Fatal("relay.jsonl lacks a flip or a rewrite")
			}
			_, flipPort, _ := net.SplitHostPort(flip.Upstream)
			toRelay := "tcp.dstport == " + flipPort
			got := tshark(t, "-r", wire, "-o", "tls.keylog_file:"+keys, "-Y", "tls.alert_message.desc == 20 && "+toRelay,
				"-T", "fields", "-e", "tls.alert_message.level", "-e", "tls.alert_message.desc")
			if !strings.Contains(got, "2") || !strings.Contains(got, "20") {
				t.Errorf("tshark with keys.log: no fatal bad_record_mac (20) from the bank to the relay's port %s; got %q", flipPort, got)
			}
			blind := tshark(t, "-r", wire, "-o", "tls.keylog_file:/dev/null", "-Y", "(tls.alert_message || tls.record.content_type == 21) && "+toRelay)
			if strings.TrimSpace(blind) != "" {
				t.Errorf("tshark without keys reads an alert on that connection; TLS 1.3 should hide it:\n%s", blind)
			}
			_, rwPort, _ := net.SplitHostPort(rewrite.Upstream)
			forms := tshark(t, "-r", wire, "-Y", `urlencoded-form.key == "to"`, "-T", "fields", "-e", "tcp.srcport", "-e", "urlencoded-form.value")
			sawTyped, sawAltered := false, false
			for _, line := range strings.Split(strings.TrimSpace(forms), "\n") {
				port, values, _ := strings.Cut(line, "\t")
				if port == rwPort && strings.Contains(values, TamperAttacker) {
					sawAltered = true
				}
				if port != rwPort && strings.Contains(values, TamperRecipient) {
					sawTyped = true
				}
			}
			if !sawTyped || !sawAltered {
				t.Errorf("tshark's forms: the victim's %s %v, the relay's %s to the bank (port %s) %v; got\n%s", TamperRecipient, sawTyped, TamperAttacker, rwPort, sawAltered, forms)
			}
		})
	}
}

// TestInteropTamperTLS12Alert measures what lab 10's note says of TLS
// 1.2: the bank's bad_record_mac is a record of type 21 that tshark names
// without keys (an "Encrypted Alert"), and reads as bad_record_mac only
// with them.
func TestInteropTamperTLS12Alert(t *testing.T) {
	dir := t.TempDir()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wire := filepath.Join(dir, "wire.pcapng")
	wr, err := capture.Create(wire, capture.PCAPNG, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.log")
	kf, err := os.OpenFile(keys, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	bank, err := StartBank(BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw", KeyLog: kf, Listen: wr.TapListener,
		TLS: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := StartRelay(RelayOptions{Target: bank.HTTPSAddr, FlipTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := (&goVictim{}).Do(context.Background(), Visit{Base: relayBase("https", r.Addr), Trust: []*x509.Certificate{pki.Root.Cert},
		Transfer: &Transfer{To: TamperRecipient, Amount: "1.00", Ready: r.Arm}}, "alice", "pw")
	r.Close()
	bank.Close()
	kf.Close()
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	if err != nil || out.Transfer == nil || out.Transfer.OK {
		t.Fatalf("the transfer through the armed relay: %+v, %v; want it refused", out, err)
	}
	_, port, _ := net.SplitHostPort(bank.HTTPSAddr)
	fromBank := fmt.Sprintf("tcp.srcport == %s", port)
	blind := tshark(t, "-r", wire, "-o", "tls.keylog_file:/dev/null", "-Y", "tls.record.content_type == 21 && "+fromBank,
		"-T", "fields", "-e", "frame.number", "-e", "tls.alert_message.desc")
	lines := strings.Split(strings.TrimSpace(blind), "\n")
	readable := false
	for _, l := range lines {
		_, desc, _ := strings.Cut(l, "\t")
		readable = readable || strings.TrimSpace(desc) != ""
	}
	if strings.TrimSpace(blind) == "" || readable {
		t.Errorf("without keys: want alert records (type 21) from the bank whose description tshark cannot read; got %q", blind)
	}
	keyed := tshark(t, "-r", wire, "-o", "tls.keylog_file:"+keys, "-Y", "tls.alert_message.desc == 20 && "+fromBank, "-T", "fields", "-e", "tls.alert_message.level")
	if !strings.Contains(keyed, "2") {
		t.Errorf("with the keys: no fatal bad_record_mac from the bank; got %q", keyed)
	}
}
