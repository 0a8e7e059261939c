package labs

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mitmlab/mitmlab/capture/analysis"
	"github.com/mitmlab/mitmlab/capture/tlswire"

	"github.com/mitmlab/mitmlab/capture/live"

	"github.com/mitmlab/mitmlab/ca"
	"github.com/mitmlab/mitmlab/capture"
	"github.com/mitmlab/mitmlab/mitm"
)

// World is one lab's little internet, all on loopback: the lab's public
// PKI, a rogue CA, the bank, the capture of every leg, and (when the lab
// needs one) the intercepting proxy. Everything it writes goes to Dir.
type World struct {
	Dir     string
	PKI     *ca.PKI
	Rogue   *ca.Root
	Bank    *Bank
	Chain   *ca.Chain // what the bank serves
	Victim  Victim
	Secret  string // the victim's password, random per run
	User    string
	Capture string // "live" or "tap"

	log      *slog.Logger
	rec      *recorder
	keys     *keyLog
	wire     *capture.Writer
	live     *live.Handle
	liveDone chan struct{}
	tapping  bool
	ports    []int // what the live capture keeps
	// tls12 and tls13 are the bank addresses of passiveLogins' two visits.
	tls12, tls13 string
	closers      []func()
}

// CaptureMode says how the wire is recorded.
type CaptureMode string

// The capture modes.
const (
	CaptureAuto CaptureMode = "auto" // live when privileged, else tap
	CaptureLive CaptureMode = "live" // AF_PACKET on lo: needs root or CAP_NET_RAW
	CaptureTap  CaptureMode = "tap"  // mitmlab records its own connections
)

// worldOptions shape a World.
type worldOptions struct {
	dir      string
	client   ClientKind
	capture  CaptureMode
	log      *slog.Logger
	rec      *recorder
	password string
	noBank   bool // the lab starts its own banks
}

// newWorld builds the PKI, the rogue CA and the bank, and starts the
// capture.
func newWorld(ctx context.Context, o worldOptions) (*World, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, fmt.Errorf("labs: %w", err)
	}
	w := &World{Dir: o.dir, log: o.log, rec: o.rec, User: "alice", Secret: o.password}
	if w.Secret == "" {
		w.Secret = RandomSecret()
	}
	var err error
	if w.PKI, err = ca.NewPKI(ca.PKIOptions{}); err != nil {
		return nil, err
	}
	if w.Rogue, err = ca.NewRoot(ca.RootOptions{CommonName: "Evil Lab Interception CA"}); err != nil {
		return nil, err
	}
	if w.keys, err = newKeyLog(filepath.Join(o.dir, "keys.log")); err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { w.keys.close() })
	if w.Victim, err = newVictim(o.client, w); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.openCapture(o.capture); err != nil {
		w.Close()
		return nil, err
	}
	if o.noBank {
		return w, nil
	}
	if err := w.StartBank(ca.ProfileValid, nil); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// StartBank (re)starts the bank with a chain of the given profile; tlsCfg
// may adjust its TLS (versions, cipher suites).
func (w *World) StartBank(profile ca.Profile, tlsCfg func(*tls.Config)) error {
	if w.Bank != nil {
		w.Bank.Close()
	}
	chain, err := w.PKI.Issue(profile, []string{BankHost}, ca.IssueOptions{})
	if err != nil {
		return err
	}
	return w.startBankWith(chain, tlsCfg)
}

func (w *World) startBankWith(chain *ca.Chain, tlsCfg func(*tls.Config)) error {
	bank, err := StartBank(BankOptions{
		Certificate: chain.TLSCertificate(), KeyLog: w.keys, Listen: w.tap,
		Username: w.User, Password: w.Secret, TLS: tlsCfg,
		TransactionLog: filepath.Join(w.Dir, "transactions.jsonl"),
	})
	if err != nil {
		return err
	}
	w.Bank, w.Chain = bank, chain
	w.closers = append(w.closers, bank.Close)
	w.watch(bank.HTTPSAddr, bank.HTTPAddr)
	w.Step("%s serves HTTPS on %s and HTTP on %s (its chain: %s ← %s)", BankHost, bank.HTTPSAddr, bank.HTTPAddr,
		chain.Leaf().Subject.CommonName, chain.Issuer.Subject.CommonName)
	return nil
}

// Step records something the lab does, and prints it.
func (w *World) Step(format string, args ...any) { w.rec.step(fmt.Sprintf(format, args...)) }

// Expect records a checked claim.
func (w *World) Expect(id, text string, ok bool, evidence string, args ...any) bool {
	return w.rec.expect(id, text, ok, fmt.Sprintf(evidence, args...))
}

// Note adds an explanation for the report.
func (w *World) Note(text string) { w.rec.res.Notes = append(w.rec.res.Notes, text) }

// Artifact records a file the lab wrote (path inside Dir).
func (w *World) Artifact(name string) { w.rec.artifact(filepath.Join(w.Dir, name)) }

// RandomSecret is the victim's password: different in every run, so no
// expectation can pass on a hard-coded string (and `mitmlab serve`'s
// default, for the same reason).
func RandomSecret() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "hunter2-" + hex.EncodeToString(b)
}

// PublicRoots is what a victim trusting only real CAs has: the lab PKI.
func (w *World) PublicRoots() []*x509.Certificate { return []*x509.Certificate{w.PKI.Root.Cert} }

// --- capture -------------------------------------------------------------

func (w *World) openCapture(mode CaptureMode) error {
	path := filepath.Join(w.Dir, "wire.pcapng")
	wr, err := capture.Create(path, capture.PCAPNG, 0o600)
	if err != nil {
		return err
	}
	w.wire = wr
	switch mode {
	case CaptureTap:
		w.tapping, w.Capture = true, "tap"
	case CaptureLive, CaptureAuto, "":
		// The filter gets its ports as listeners open (watch); until then
		// the capture keeps nothing but what the lab makes on lo.
		probe, err := live.Open("lo", live.Options{Filter: live.Filter{Ports: []int{1}}})
		if err != nil {
			if mode == CaptureLive || !errors.Is(err, fs.ErrPermission) && !errors.Is(err, live.ErrUnsupported) {
				wr.Abort()
				return fmt.Errorf("labs: live capture: %w", err)
			}
			w.tapping, w.Capture = true, "tap"
			break
		}
		probe.Close()
		w.Capture = "live"
	}
	w.Step("capturing the wire (%s) → %s", w.Capture, relPath(path))
	return nil
}

// tap wraps a listener when the capture is the tap.
func (w *World) tap(ln net.Listener) net.Listener {
	if !w.tapping {
		return ln
	}
	return w.wire.TapListener(ln)
}

// watch adds ports to the live capture's filter before the lab sends
// anything to them. The running socket gets the new filter: reopening it
// would lose the packets of the previous step not read yet.
func (w *World) watch(addrs ...string) {
	if w.Capture != "live" {
		return
	}
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			var n int
			fmt.Sscan(p, &n)
			w.ports = append(w.ports, n)
		}
	}
	if w.live != nil {
		if err := w.live.SetFilter(live.Filter{Ports: w.ports}); err != nil {
			w.log.Error("live capture: cannot extend the filter", "err", err)
		}
		return
	}
	h, err := live.Open("lo", live.Options{Filter: live.Filter{Ports: w.ports}})
	if err != nil {
		w.log.Error("live capture failed", "err", err)
		return
	}
	w.live, w.liveDone = h, make(chan struct{})
	go func(h *live.Handle, done chan struct{}) {
		defer close(done)
		if r := live.Pump(h, w.wire, 0); r.Err() != nil {
			w.log.Error("live capture stopped early", "err", r.Err())
		}
	}(h, w.liveDone)
}

// finishCapture stops recording; with embedKeys the key log goes into the
// pcapng as decryption secrets.
func (w *World) finishCapture(embedKeys bool) error {
	if w.live != nil {
		time.Sleep(100 * time.Millisecond) // the last ACKs and FINs
		w.live.Stop()                      // the reader takes what is queued, then stops
		<-w.liveDone
		w.live.Close()
		w.live = nil
	}
	if embedKeys {
		if data := w.keys.bytes(); len(data) > 0 {
			if err := w.wire.WriteDecryptionSecrets(data); err != nil {
				return err
			}
		}
	}
	if err := w.wire.Close(); err != nil {
		return err
	}
	w.Artifact("wire.pcapng")
	if embedKeys {
		return nil
	}
	// Beside the eavesdropper's view, the same packets with every leg's
	// session keys embedded: what Wireshark opens decrypted with no setting.
	keys, n := capture.KeyLogLines(w.keys.bytes())
	if n == 0 {
		return nil // no TLS: nothing to decrypt
	}
	if _, err := capture.EmbedSecretsFile(filepath.Join(w.Dir, WireWithKeys), filepath.Join(w.Dir, "wire.pcapng"), keys); err != nil {
		return err
	}
	w.Artifact(WireWithKeys)
	w.Step("the same capture with every leg's session keys embedded → %s (Wireshark and tshark open it decrypted)", relPath(filepath.Join(w.Dir, WireWithKeys)))
	return nil
}

// WireWithKeys is the name of a lab's self-decrypting copy of wire.pcapng:
// the same packets, with the session keys of every TLS leg the lab made
// (victim, proxy, bank) embedded as decryption secrets.
const WireWithKeys = "wire-with-keys.pcapng"

// Analyze reads the wire capture (or another capture in Dir) with the
// capture package, looking for the secret; withKeys decrypts with the run's
// key log (keys.log) only, without, with the secrets the file embeds.
func (w *World) Analyze(file string, withKeys bool) (*analysis.Report, error) {
	opts := analysis.Options{Samples: true}
	if withKeys {
		// keys.log alone: the secrets a pcapng embeds would decrypt it
		// without them, and the check would prove nothing about the log.
		opts.Keys, _ = tlswire.ParseKeyLog(w.keys.bytes())
		opts.IgnoreFileSecrets = true
	}
	return w.analyze(file, opts)
}

// analyzeWith analyses a capture with the given keys.
func (w *World) analyzeWith(file string, keys *tlswire.KeyLog) (*analysis.Report, error) {
	return w.analyze(file, analysis.Options{Keys: keys, Samples: true})
}

// AnalyzeIgnoringFileKeys analyses a capture as an eavesdropper without
// keys would, even if the file embeds decryption secrets.
func (w *World) AnalyzeIgnoringFileKeys(file string) (*analysis.Report, error) {
	return w.analyze(file, analysis.Options{IgnoreFileSecrets: true})
}

// analyze reads a capture in Dir with opts, looking for the password.
func (w *World) analyze(file string, opts analysis.Options) (*analysis.Report, error) {
	f, err := os.Open(filepath.Join(w.Dir, file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := capture.NewReader(f)
	if err != nil {
		return nil, err
	}
	opts.Secrets = []analysis.Secret{{Name: "password", Value: w.Secret}}
	return analysis.Analyze(r, opts)
}

// Close stops everything the world started.
func (w *World) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
	if w.live != nil {
		w.live.Close()
		<-w.liveDone
		w.live = nil
	}
	if w.wire != nil {
		w.wire.Abort()
	}
}

// --- the key log ---------------------------------------------------------

// keyLog collects the TLS secrets of every endpoint the lab controls (the
// bank, the proxy, the Go victim) into keys.log (0600), and those curl and
// Chromium write to their own files (merged by bytes()).
type keyLog struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	extra []string // files other programs write (SSLKEYLOGFILE)
}

func newKeyLog(path string) (*keyLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("labs: %w", err)
	}
	return &keyLog{path: path, f: f}, nil
}

func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f == nil {
		return 0, os.ErrClosed
	}
	return k.f.Write(p)
}

// file names a key log another program writes, merged into keys.log.
func (k *keyLog) file(name string) string {
	path := filepath.Join(filepath.Dir(k.path), name)
	k.mu.Lock()
	k.extra = append(k.extra, path)
	k.mu.Unlock()
	return path
}

// bytes merges the other programs' key logs in and returns the whole log.
func (k *keyLog) bytes() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.extra {
		if data, err := os.ReadFile(p); err == nil && k.f != nil {
			k.f.Write(data)
			os.Remove(p)
		}
	}
	k.extra = nil
	data, _ := os.ReadFile(k.path)
	return data
}

func (k *keyLog) close() {
	k.bytes()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f != nil {
		k.f.Close()
		k.f = nil
	}
}

// --- flows ---------------------------------------------------------------

// flow is a proxy flow as read back from flows.jsonl: the lab checks the
// file the proxy wrote, not the proxy's memory.
type flow struct {
	Handling    string `json:"handling"`
	Target      string `json:"target"`
	Client      string `json:"client"`
	OriginalDst string `json:"original_dst"` // transparent mode (lab 12)
	ClientTLS   *struct {
		SNI         string         `json:"sni"`
		Certificate *mitm.CertInfo `json:"certificate"`
	} `json:"client_tls"`
	UpstreamTLS *struct {
		Certificate *mitm.CertInfo `json:"certificate"`
	} `json:"upstream_tls"`
	Request *struct {
		Method string `json:"method"`
		URL    string `json:"url"`
		Body   *struct {
			Text string `json:"text"`
		} `json:"body"`
	} `json:"request"`
	Response *struct {
		Status int `json:"status"`
	} `json:"response"`
	Refusal *struct {
		Alert   string `json:"alert"`
		Message string `json:"message"`
	} `json:"refusal"`
	Unused *struct {
		Idle        float64 `json:"idle"`
		CloseNotify bool    `json:"close_notify"`
	} `json:"unused"`
	Error    string   `json:"error"`
	Modified []string `json:"modified"` // what a rewriting proxy changed
}

// Flows reads the proxy's flows.jsonl.
func (w *World) Flows() ([]flow, error) {
	f, err := os.Open(filepath.Join(w.Dir, "flows.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []flow
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var fl flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			return nil, fmt.Errorf("labs: flows.jsonl: %w", err)
		}
		out = append(out, fl)
	}
	return out, sc.Err()
}
