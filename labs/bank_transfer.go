package labs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"
)

// Transaction is one transfer the bank executed, as its transaction log
// (transactions.jsonl) records it: what the bank received and acted on,
// whatever the victim typed.
type Transaction struct {
	ID     int       `json:"id"`
	At     time.Time `json:"at"`
	User   string    `json:"user"`   // whose session ordered it
	To     string    `json:"to"`     // the recipient's account number
	Amount string    `json:"amount"` // EUR, as entered: "250.00"
	Scheme string    `json:"scheme"` // "https" or "http": how the order arrived
	// Client is the TCP peer the bank saw: the victim, or whatever sat in
	// between (a relay, a proxy).
	Client string `json:"client"`
}

// ledger is the bank's transaction log: in memory for the lab, and one
// JSON line per transfer in a file when the bank was given one.
type ledger struct {
	mu   sync.Mutex
	path string
	txs  []Transaction
	// earlier is how many transfers the file held from an earlier run:
	// the numbers go on after them, so each is unique in the file.
	earlier int
}

// openLedger starts the log of a bank, after what its file already holds.
func openLedger(path string) (*ledger, error) {
	l := &ledger{path: path}
	if path != "" {
		old, err := ReadTransactions(path)
		if err != nil {
			return nil, fmt.Errorf("labs: bank: transaction log: %w; move it away, or choose another file", err)
		}
		l.earlier = len(old)
	}
	return l, nil
}

// accountPattern is the lab bank's account number: three groups of four
// digits. Every account has the same length, so a tamperer who swaps one
// for another keeps every Content-Length true.
var accountPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{4}-[0-9]{4}$`)

// amountPattern is an amount in EUR, with cents or without.
var amountPattern = regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]{2})?$`)

func (l *ledger) add(tx Transaction) (Transaction, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tx.ID = l.earlier + len(l.txs) + 1
	if l.path != "" {
		line, err := json.Marshal(tx)
		if err != nil {
			return tx, err
		}
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return tx, fmt.Errorf("labs: bank: transaction log: %w", err)
		}
		_, err = f.Write(append(line, '\n'))
		if e := f.Close(); err == nil {
			err = e
		}
		if err != nil {
			return tx, fmt.Errorf("labs: bank: transaction log: %w", err)
		}
	}
	l.txs = append(l.txs, tx)
	return tx, nil
}

// Transactions lists the transfers the bank executed, in order (not those
// an earlier bank wrote to the same log).
func (b *Bank) Transactions() []Transaction {
	b.ledger.mu.Lock()
	defer b.ledger.mu.Unlock()
	return append([]Transaction(nil), b.ledger.txs...)
}

// ReadTransactions reads a transaction log the bank wrote (one JSON
// object a line); a missing file is an empty log: no transfer happened.
func ReadTransactions(path string) ([]Transaction, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Transaction
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var tx Transaction
		if err := dec.Decode(&tx); err != nil {
			return out, fmt.Errorf("labs: %s: %w", path, err)
		}
		out = append(out, tx)
	}
	return out, nil
}

// loggedIn reports whether r carries a live session cookie.
func (b *Bank) loggedIn(r *http.Request) bool {
	c, err := r.Cookie("session")
	b.mu.Lock()
	defer b.mu.Unlock()
	return err == nil && b.sessions[c.Value]
}

// transferForm is GET /transfer's form. The recipient comes first, so the
// body reads to=…&amount=… (form fields go in document order).
const transferForm = `<form action="/transfer" method="post">` +
	`<label>Recipient account <input name="to" placeholder="1234-5678-9012" pattern="[0-9]{4}-[0-9]{4}-[0-9]{4}" required></label> ` +
	`<label>Amount (EUR) <input name="amount" inputmode="decimal" required></label> ` +
	`<button id="transfer" type="submit">Transfer</button></form>`

// serveTransfer is /transfer: the form, and the order it sends. Only a
// logged-in session may see it or use it.
func (b *Bank) serveTransfer(w http.ResponseWriter, r *http.Request, page func(title, body string)) {
	if !b.loggedIn(r) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			page("Not logged in", `<p>Log in first: a transfer needs a session.</p><p><a href="/login">Log in</a></p>`)
			return
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		page("Transfer", `<p>Send money from the account of `+html.EscapeString(b.Username)+`.</p>`+transferForm)
	case http.MethodPost:
		r.ParseForm()
		to, amount := r.PostForm.Get("to"), r.PostForm.Get("amount")
		if !accountPattern.MatchString(to) || !amountPattern.MatchString(amount) {
			w.WriteHeader(http.StatusBadRequest)
			page("Transfer refused", `<p>A recipient account is three groups of four digits (1234-5678-9012) and an amount is in EUR (250.00).</p><p><a href="/transfer">Try again</a></p>`)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		tx, err := b.ledger.add(Transaction{At: time.Now().UTC(), User: b.Username, To: to, Amount: amount, Scheme: scheme, Client: r.RemoteAddr})
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			page("Transfer failed", `<p>The bank could not record the transfer.</p>`)
			return
		}
		page("Transfer done", fmt.Sprintf(`<p id="confirmation">Transfer %d: %s EUR to account %s.</p><p><a href="/account">Back to your account</a></p>`,
			tx.ID, html.EscapeString(amount), html.EscapeString(to)))
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
