// Package marionette speaks Marionette, the remote protocol built into
// Firefox (started with --marionette): JSON arrays over one TCP
// connection, each framed as its length in bytes, a colon and the JSON
// text. It is what geckodriver speaks to Firefox; talking it directly
// means no driver binary to download or keep in step with the browser.
//
// A command is [0, id, name, parameters]; its answer is [1, id, error,
// result], error null on success. Firefox greets a new connection with
// {"applicationType":"gecko","marionetteProtocol":3}.
//
//	c, err := marionette.Dial(ctx, "127.0.0.1:2828")
//	if err != nil { ... }
//	defer c.Close()
//	var s struct{ SessionID string `json:"sessionId"` }
//	err = c.Call(ctx, "WebDriver:NewSession", map[string]any{"capabilities": map[string]any{}}, &s)
//	err = c.Call(ctx, "WebDriver:Navigate", map[string]any{"url": "https://bank.lab.test:8443/"}, nil)
//
// The command names and their parameters are those of Firefox's
// remote/marionette/driver.sys.mjs; errors carry the WebDriver error name
// ("insecure certificate", "no such element"), see Error.
package marionette
