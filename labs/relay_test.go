package labs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// testBank starts the lab bank on loopback with a chain of a fresh lab
// PKI, logging its transactions to a file in a temporary directory.
func testBank(t *testing.T, tlsCfg func(*tls.Config)) (*Bank, []*x509.Certificate, string) {
	t.Helper()
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.Issue(ca.ProfileValid, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "transactions.jsonl")
	b, err := StartBank(BankOptions{Certificate: chain.TLSCertificate(), Username: "alice", Password: "pw", TLS: tlsCfg, TransactionLog: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, []*x509.Certificate{pki.Root.Cert}, log
}

func startTestRelay(t *testing.T, opts RelayOptions) *Relay {
	t.Helper()
	r, err := StartRelay(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestScan(t *testing.T) {
	p := fieldPattern("to", 14)
	for _, c := range []struct {
		name  string
		in    string
		sent  int // bytes of in that went on already: context
		hits  []int
		ready int
	}{
		{"body start", "\r\n\r\nto=1234-5678-9012&amount=1", 0, []int{3}, 30},
		{"after a field", "amount=1&to=1234-5678-9012", 0, []int{8}, 26},
		{"two", "&to=1111-1111-1111&to=2222-2222-2222x", 0, []int{0, 18}, 37},
		{"not a field of its own", "auto=1234-5678-9012&photo=1234-5678-9012", 0, nil, 40},
		{"too short", "&to=1234-56&x", 0, nil, 13},
		{"a value cut at the end waits, the field name goes on", "amount=1&to=1234-56", 0, nil, 12},
		{"a blank line at the end goes on", "GET / HTTP/1.1\r\n\r\n", 0, nil, 18},
		{"a match already sent is not touched", "&to=1234-5678-9012", 18, nil, 18},
		{"a value completing after its sent field name", "x&to=1234-5678-9012&", 5, []int{1}, 20},
		{"a value cut after context waits", "x&to=1234", 5, nil, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hits []int
			ready := scan([]byte(c.in), c.sent, p, 4, func(at int) { hits = append(hits, at) })
			if ready != c.ready || !equalInts(hits, c.hits) {
				t.Errorf("scan(%q, sent %d) = %d, hits %v; want %d, hits %v", c.in, c.sent, ready, hits, c.ready, c.hits)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// labClient is an HTTP client of the lab's loopback "DNS", trusting roots.
func labClient(roots []*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialLab, TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// login logs in at base (through whatever base points at) and returns a
// client holding the session.
func login(t *testing.T, base string, roots []*x509.Certificate) *http.Client {
	t.Helper()
	c := labClient(roots)
	c.Jar, _ = cookiejar.New(nil)
	resp, err := c.PostForm(base+"/login", url.Values{"username": {"alice"}, "password": {"pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s", resp.Status)
	}
	return c
}

// TestRelayRewrite: the relay rewrites the recipient of a form sent in two
// writes that split the account number, the bank pays the attacker, and
// the victim reads the account it typed.
func TestRelayRewrite(t *testing.T) {
	bank, _, logPath := testBank(t, nil)
	r := startTestRelay(t, RelayOptions{Target: bank.HTTPAddr, Rewrite: &FieldRewrite{Field: "to", Value: TamperAttacker}})
	base := relayBase("http", r.Addr)
	c := login(t, base, nil)
	u, _ := url.Parse(base)
	cookie := c.Jar.Cookies(u)[0]

	body := "to=" + TamperRecipient + "&amount=10.00"
	head := "POST /transfer HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Cookie: session=" + cookie.Value + "\r\nContent-Length: " + itoa(len(body)) + "\r\nConnection: close\r\n\r\n"
	raw := head + body
	cut := len(head) + 8 // inside the account number
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(raw[:cut]))
	time.Sleep(20 * time.Millisecond)
	conn.Write([]byte(raw[cut:]))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(page, []byte("to account "+TamperRecipient)) || bytes.Contains(page, []byte(TamperAttacker)) {
		t.Errorf("the victim's confirmation = %q, want it to name %s only", page, TamperRecipient)
	}
	txs, err := ReadTransactions(logPath)
	if err != nil || len(txs) != 1 || txs[0].To != TamperAttacker || txs[0].Scheme != "http" {
		t.Fatalf("transactions.jsonl = %+v, %v; want one transfer to %s over http", txs, err, TamperAttacker)
	}
	if got := bank.Transactions(); len(got) != 1 || got[0] != txs[0] {
		t.Errorf("Bank.Transactions() = %+v, want what the file says, %+v", got, txs)
	}
	var ev []RelayEvent
	connected := map[string]bool{}
	for _, e := range r.Events() {
		if e.What == "connect" {
			connected[e.Upstream] = e.Target == bank.HTTPAddr
		} else {
			ev = append(ev, e)
		}
	}
	if len(connected) != 2 || !connected[txs[0].Client] {
		t.Errorf("relay connects = %v, want the login's and the transfer's, to %s", connected, bank.HTTPAddr)
	}
	if len(ev) != 2 || ev[0].What != "rewrite" || ev[0].From != "to="+TamperRecipient || ev[1].What != "rewrite-back" || ev[0].Upstream != txs[0].Client {
		t.Errorf("relay events = %+v, want a rewrite from the bank's client %s, then a rewrite-back", ev, txs[0].Client)
	}
}

// TestRelayRewriteHoldsBackBriefly: bytes that could start a match but
// never become one go on after the hold-back, so a request is never stuck.
func TestRelayRewriteHoldsBackBriefly(t *testing.T) {
	bank, _, _ := testBank(t, nil)
	r := startTestRelay(t, RelayOptions{Target: bank.HTTPAddr, Rewrite: &FieldRewrite{Field: "to", Value: TamperAttacker}})
	body := "amount=1&to=12"
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.Write([]byte("POST /transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer through the relay: %v", err)
	}
	if resp.StatusCode != http.StatusUnauthorized || time.Since(start) > 2*time.Second {
		t.Errorf("answer %s after %v, want 401 (no session) within the hold-back", resp.Status, time.Since(start))
	}
	if ev := r.Events(); len(ev) != 1 || ev[0].What != "connect" {
		t.Errorf("relay events = %+v, want the connect alone", ev)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRelayFlipTLS: through the TLS relay, an unarmed relay changes
// nothing (the transfer is paid); armed when the form is up, it flips a
// bit of the next record, the bank answers bad_record_mac and pays
// nothing; armed before the visit it spares the handshake (the client's
// Finished) and strikes the first application data. TLS 1.2 and 1.3.
func TestRelayFlipTLS(t *testing.T) {
	for _, v := range []struct {
		name string
		max  uint16
		// firstData is the index of the client's first application-data
		// record from Go: ClientHello, (ClientKeyExchange,)
		// ChangeCipherSpec, Finished, data.
		firstData int
	}{{"TLS 1.2", tls.VersionTLS12, 4}, {"TLS 1.3", tls.VersionTLS13, 3}} {
		t.Run(v.name, func(t *testing.T) {
			bank, roots, logPath := testBank(t, func(c *tls.Config) { c.MaxVersion = v.max })
			victim := &goVictim{}
			ctx := context.Background()
			tr := func(ready func()) Visit {
				return Visit{Trust: roots, Transfer: &Transfer{To: TamperRecipient, Amount: "1.00", Ready: ready}}
			}

			quiet := startTestRelay(t, RelayOptions{Target: bank.HTTPSAddr, FlipTLS: true})
			visit := tr(nil)
			visit.Base = relayBase("https", quiet.Addr)
			out, err := victim.Do(ctx, visit, "alice", "pw")
			if err != nil || !out.OK || out.Transfer == nil || !out.Transfer.OK {
				t.Fatalf("through an unarmed relay: %+v, %v; want a paid transfer", out, err)
			}

			armed := startTestRelay(t, RelayOptions{Target: bank.HTTPSAddr, FlipTLS: true})
			visit = tr(armed.Arm)
			visit.Base = relayBase("https", armed.Addr)
			out, err = victim.Do(ctx, visit, "alice", "pw")
			if err != nil || !out.OK || out.Transfer == nil || out.Transfer.OK || !strings.Contains(out.Transfer.Err, "bad record MAC") {
				t.Fatalf("armed at the form: %+v, %v; want the login, then a transfer refused with bad record MAC", out.Transfer, err)
			}
			ev := flipsOf(armed.Events())
			if len(ev) != 1 || ev[0].Record <= v.firstData {
				t.Errorf("armed relay's events = %+v, want one flip after the login's records", ev)
			}

			early := startTestRelay(t, RelayOptions{Target: bank.HTTPSAddr, FlipTLS: true})
			early.Arm()
			visit = tr(nil)
			visit.Base = relayBase("https", early.Addr)
			out, err = victim.Do(ctx, visit, "alice", "pw")
			if err != nil || out.OK {
				t.Fatalf("armed from the start: %+v, %v; want the first request to fail", out, err)
			}
			if ev := flipsOf(early.Events()); len(ev) == 0 || ev[0].Record != v.firstData {
				t.Errorf("armed from the start, events = %+v; want the flip in record %d, the first after the Finished", ev, v.firstData)
			}

			txs, err := ReadTransactions(logPath)
			if err != nil || len(txs) != 1 {
				t.Errorf("transactions = %+v, %v; want only the unarmed relay's", txs, err)
			}
		})
	}
}

func flipsOf(ev []RelayEvent) []RelayEvent {
	var out []RelayEvent
	for _, e := range ev {
		if e.What == "flip" {
			out = append(out, e)
		}
	}
	return out
}

// FuzzFlipRecords: unarmed, the TLS relay is transparent to any bytes,
// records or not; armed, it changes at most one byte per connection.
func FuzzFlipRecords(f *testing.F) {
	f.Add([]byte("\x16\x03\x01\x00\x02hi\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x03abc\x17\x03\x03\x00\x04defg"), true)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), false)
	f.Add([]byte("\x17\x03\x03\xff\xff"), true)
	f.Fuzz(func(t *testing.T, in []byte, arm bool) {
		r := &Relay{armed: arm}
		c1, c2 := net.Pipe()
		s1, s2 := net.Pipe()
		go func() {
			c1.Write(in)
			c1.Close()
		}()
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(s2)
			got <- b
		}()
		r.flipRecords(relayConn{n: 1}, c2, s1)
		s1.Close()
		c2.Close()
		out := <-got
		if !arm && !bytes.Equal(out, in) {
			t.Fatalf("unarmed relay changed the stream: %x → %x", in, out)
		}
		if len(out) != len(in) {
			t.Fatalf("the relay changed the length: %d → %d", len(in), len(out))
		}
		diff := 0
		for i := range in {
			if in[i] != out[i] {
				diff++
			}
		}
		if diff > 1 || diff != len(r.Events()) {
			t.Fatalf("%d bytes changed, %d events: want at most one, each reported", diff, len(r.Events()))
		}
	})
}
