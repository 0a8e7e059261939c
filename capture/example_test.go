package capture_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/mitmlab/mitmlab/capture"
)

// A Conversation turns bytes seen in clear into a TCP connection that
// Wireshark follows: handshake, segments each acknowledged, FIN exchange.
// Sequence numbers here are relative, as Wireshark shows them.
func ExampleWriter_NewConversation() {
	var file bytes.Buffer // or capture.Create(path, capture.FormatFromPath(path), 0o600)
	w, err := capture.NewWriter(&file, capture.PCAP)
	if err != nil {
		log.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conv, err := w.NewConversation(netip.MustParseAddrPort("10.0.0.1:51000"), netip.MustParseAddrPort("10.0.0.2:80"), at)
	if err != nil {
		log.Fatal(err)
	}
	conv.Write(capture.ClientToServer, []byte("GET / HTTP/1.1\r\nHost: bank.lab.test\r\n\r\n"), at)
	conv.Write(capture.ServerToClient, []byte("HTTP/1.1 204 No Content\r\n\r\n"), at)
	conv.Close(capture.ClientToServer, at)
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, _ := pcapgo.NewReader(&file)
	var isn = map[layers.TCPPort]uint32{}
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		tcp := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp.SYN {
			isn[tcp.SrcPort] = tcp.Seq
		}
		ack := uint32(0)
		if tcp.ACK {
			ack = tcp.Ack - isn[tcp.DstPort]
		}
		fmt.Printf("%5d > %-5d SYN=%-5v ACK=%-5v PSH=%-5v FIN=%-5v seq=%d ack=%d len=%d\n",
			tcp.SrcPort, tcp.DstPort, tcp.SYN, tcp.ACK, tcp.PSH, tcp.FIN, tcp.Seq-isn[tcp.SrcPort], ack, len(tcp.Payload))
	}
	// Output:
	// 51000 > 80    SYN=true  ACK=false PSH=false FIN=false seq=0 ack=0 len=0
	//    80 > 51000 SYN=true  ACK=true  PSH=false FIN=false seq=0 ack=1 len=0
	// 51000 > 80    SYN=false ACK=true  PSH=false FIN=false seq=1 ack=1 len=0
	// 51000 > 80    SYN=false ACK=true  PSH=true  FIN=false seq=1 ack=1 len=39
	//    80 > 51000 SYN=false ACK=true  PSH=false FIN=false seq=1 ack=40 len=0
	//    80 > 51000 SYN=false ACK=true  PSH=true  FIN=false seq=1 ack=40 len=27
	// 51000 > 80    SYN=false ACK=true  PSH=false FIN=false seq=40 ack=28 len=0
	// 51000 > 80    SYN=false ACK=true  PSH=false FIN=true  seq=40 ack=28 len=0
	//    80 > 51000 SYN=false ACK=true  PSH=false FIN=false seq=28 ack=41 len=0
	//    80 > 51000 SYN=false ACK=true  PSH=false FIN=true  seq=28 ack=41 len=0
	// 51000 > 80    SYN=false ACK=true  PSH=false FIN=false seq=41 ack=29 len=0
}

// Create writes through a temporary file: nothing appears at the path until
// Close, and an aborted capture leaves nothing behind.
func ExampleCreate() {
	dir, _ := os.MkdirTemp("", "capture-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "plain.pcapng")
	w, err := capture.Create(path, capture.FormatFromPath(path), 0o600) // plaintext: owner only
	if err != nil {
		log.Fatal(err)
	}
	defer w.Abort() // removes the temporary file if Close is never reached
	// ... conversations ...
	w.Abort() // here: nothing worth keeping
	_, err = os.Stat(path)
	fmt.Println(w.Format(), errors.Is(err, fs.ErrNotExist))
	// Output: pcapng true
}
