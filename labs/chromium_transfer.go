package labs

import (
	"context"
	"fmt"
	"strings"

	"github.com/chromedp/chromedp"
)

// Transfer opens base+"/transfer" in the logged-in browser, types the
// recipient and the amount into input[name=to] and input[name=amount] as a
// person would, calls ready (when set) with the form filled in, clicks
// button#transfer and waits for the page that follows the POST. A form that
// does not load is a result with NetError set; a page without the form is
// that page and an error.
func (b *Browser) Transfer(ctx context.Context, base, to, amount string, ready func()) (*BrowserResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cctx, done := b.bound(ctx)
	defer done()
	formURL := strings.TrimSuffix(base, "/") + "/transfer"
	res, err := b.navigate(cctx, chromedp.NavigateResponse(formURL))
	if err != nil || res.NetError != "" {
		return b.finish(ctx, "transfer form", formURL, res, err)
	}
	hasForm, err := chromedp.Run(cctx, chromedp.Evaluate[bool](
		`!!(document.querySelector('input[name=to]') && document.querySelector('input[name=amount]') && document.querySelector('button#transfer'))`))
	if err != nil {
		return b.finish(ctx, "transfer form", formURL, res, err)
	}
	if !hasForm {
		res, err = b.finish(ctx, "transfer form", formURL, res, nil)
		if err != nil {
			return nil, err
		}
		return res, fmt.Errorf("labs: the page %s has no transfer form (input[name=to], input[name=amount], button#transfer): it shows %q", res.URL, clipText(res.Text, 200))
	}
	if err := chromedp.Do(cctx,
		chromedp.SendKeys(chromedp.CSS(`input[name=to]`), to),
		chromedp.SendKeys(chromedp.CSS(`input[name=amount]`), amount),
	); err != nil {
		return nil, b.fail(ctx, "fill the transfer form at "+formURL, err)
	}
	if ready != nil {
		ready()
	}
	res, err = b.navigate(cctx, navigationOf(chromedp.Click(chromedp.CSS(`button#transfer`))))
	return b.finish(ctx, "transfer", formURL, res, err)
}
