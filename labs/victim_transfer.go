package labs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
)

// transferBody is the form as a browser sends it: the fields in document
// order (to, then amount), form-encoded.
func transferBody(t *Transfer) string {
	return "to=" + url.QueryEscape(t.To) + "&amount=" + url.QueryEscape(t.Amount)
}

// hasTransferForm reports whether a page is the bank's transfer form.
func hasTransferForm(page []byte) bool {
	return bytes.Contains(page, []byte(`action="/transfer"`)) && bytes.Contains(page, []byte(`name="to"`))
}

// goTransfer opens the transfer form and sends it, with the logged-in
// client (its cookie jar and its connection, kept alive).
func goTransfer(client *http.Client, base string, t *Transfer) *TransferOutcome {
	out := &TransferOutcome{}
	resp, err := client.Get(base + "/transfer")
	if err != nil {
		out.Err = err.Error()
		return out
	}
	form, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !hasTransferForm(form) {
		out.Err = fmt.Sprintf("no transfer form at %s/transfer: %s", base, resp.Status)
		return out
	}
	if t.Ready != nil {
		t.Ready()
	}
	resp, err = client.Post(base+"/transfer", "application/x-www-form-urlencoded", strings.NewReader(transferBody(t)))
	if err != nil {
		out.Err = err.Error()
		return out
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out.Page = string(page)
	out.OK = resp.StatusCode == http.StatusOK
	if !out.OK {
		out.Err = resp.Status
	}
	return out
}

// transfer has curl open the form, then send it: two runs with the login's
// cookie jar, so each is a connection of its own (curl keeps none between
// runs), as a person who reloads the bank in a new window would make.
func (c *curlVictim) transfer(ctx context.Context, common []string, base string, t *Transfer) *TransferOutcome {
	out := &TransferOutcome{}
	form, msg, err := c.run(ctx, "form", append(append([]string{}, common...), base+"/transfer"))
	if err != nil {
		out.Err = err.Error()
		return out
	}
	if msg != "" || !hasTransferForm([]byte(form)) {
		out.Err = firstLine(msg)
		if out.Err == "" {
			out.Err = "no transfer form at " + base + "/transfer"
		}
		return out
	}
	if t.Ready != nil {
		t.Ready()
	}
	args := append(append([]string{}, common...), "--data-urlencode", "to="+t.To, "--data-urlencode", "amount="+t.Amount, base+"/transfer")
	page, msg, err := c.run(ctx, "transfer", args)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Page, out.Err, out.OK = page, strings.TrimSpace(msg), msg == ""
	return out
}

// run runs curl once, with its own key log; msg is curl's error message
// when it failed (a non-zero exit), empty when it succeeded.
func (c *curlVictim) run(ctx context.Context, what string, args []string) (stdout, msg string, err error) {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--fail-with-body"}, args...)...)
	cmd.Env = append(os.Environ(), "SSLKEYLOGFILE="+c.keylog.file(fmt.Sprintf("curl-keys-%d-%s.log", c.n, what)))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "", "", fmt.Errorf("labs: run curl: %w", err)
		}
		msg = strings.TrimSpace(e.String())
		if msg == "" {
			msg = fmt.Sprintf("curl exited with status %d", ee.ExitCode())
		}
		return o.String(), msg, nil
	}
	return o.String(), "", nil
}
