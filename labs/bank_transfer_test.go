package labs

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBankTransfer: the form and the order need a session; a malformed
// order is refused; a good one is executed once, in memory and in the
// file, with what the bank received.
func TestBankTransfer(t *testing.T) {
	bank, roots, logPath := testBank(t, nil)
	base := bank.URL("https")
	anon := labClient(roots)
	anon.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(c *http.Client, form url.Values) (int, string) {
		t.Helper()
		resp, err := c.PostForm(base+"/transfer", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := url.Values{"to": {"1234-5678-9012"}, "amount": {"250.00"}}

	resp, err := anon.Get(base + "/transfer")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("GET /transfer without a session = %s to %q, want 303 to /login", resp.Status, resp.Header.Get("Location"))
	}
	if code, _ := post(anon, good); code != http.StatusUnauthorized {
		t.Errorf("POST /transfer without a session = %d, want 401", code)
	}

	c := login(t, base, roots)
	resp, err = c.Get(base + "/transfer")
	if err != nil {
		t.Fatal(err)
	}
	form, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !hasTransferForm(form) || strings.Index(string(form), `name="to"`) > strings.Index(string(form), `name="amount"`) {
		t.Errorf("GET /transfer = %q, want the form, recipient first", form)
	}
	for _, bad := range []url.Values{
		{"to": {"1234-5678"}, "amount": {"1"}},
		{"to": {"1234-5678-9012"}, "amount": {"-5"}},
		{"to": {"1234-5678-9012"}},
	} {
		if code, _ := post(c, bad); code != http.StatusBadRequest {
			t.Errorf("POST /transfer %v = %d, want 400", bad, code)
		}
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("a refused order wrote the log: %v", err)
	}
	code, page := post(c, good)
	if code != http.StatusOK || !strings.Contains(page, "Transfer 1: 250.00 EUR to account 1234-5678-9012.") {
		t.Errorf("POST /transfer = %d %q, want the confirmation of transfer 1", code, page)
	}
	txs, err := ReadTransactions(logPath)
	if err != nil || len(txs) != 1 {
		t.Fatalf("ReadTransactions = %+v, %v; want one", txs, err)
	}
	tx := txs[0]
	if tx.ID != 1 || tx.To != "1234-5678-9012" || tx.Amount != "250.00" || tx.Scheme != "https" || tx.User != "alice" || tx.Client == "" || tx.At.IsZero() {
		t.Errorf("transaction = %+v, want transfer 1 of 250.00 to 1234-5678-9012 over https by alice", tx)
	}
	if got := bank.Transactions(); len(got) != 1 || got[0] != tx {
		t.Errorf("Bank.Transactions() = %+v, want %+v", got, tx)
	}
}

// TestReadTransactionsMissing: no file is no transfer, not an error.
func TestReadTransactionsMissing(t *testing.T) {
	txs, err := ReadTransactions(t.TempDir() + "/none.jsonl")
	if err != nil || len(txs) != 0 {
		t.Errorf("ReadTransactions(missing) = %v, %v; want nothing, nil", txs, err)
	}
}

// TestBankTransferNumbersGoOn: a bank started on the log of an earlier
// one (mitmlab serve run again) numbers its transfers after those, and a
// log it cannot read stops it with what to do.
func TestBankTransferNumbersGoOn(t *testing.T) {
	first, roots, logPath := testBank(t, nil)
	c := login(t, first.URL("https"), roots)
	if resp, err := c.PostForm(first.URL("https")+"/transfer", url.Values{"to": {"1234-5678-9012"}, "amount": {"1"}}); err == nil {
		resp.Body.Close()
	}
	first.Close()
	second, err := StartBank(BankOptions{Certificate: first.servers[0].TLSConfig.Certificates[0], Username: "alice", Password: "pw", TransactionLog: logPath})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	c = login(t, second.URL("https"), roots)
	resp, err := c.PostForm(second.URL("https")+"/transfer", url.Values{"to": {"1234-5678-9012"}, "amount": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	txs, err := ReadTransactions(logPath)
	if err != nil || len(txs) != 2 || txs[0].ID != 1 || txs[1].ID != 2 || len(second.Transactions()) != 1 {
		t.Errorf("log after two banks = %+v, %v (the second's own: %d); want transfers 1 and 2, one of them the second's", txs, err, len(second.Transactions()))
	}

	bad := filepath.Join(t.TempDir(), "transactions.jsonl")
	os.WriteFile(bad, []byte("not json\n"), 0o644)
	if _, err := StartBank(BankOptions{Certificate: first.servers[0].TLSConfig.Certificates[0], TransactionLog: bad}); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("StartBank on a damaged log: %v, want an error saying what to do", err)
	}
}
