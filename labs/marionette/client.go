package marionette

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// MaxFrame bounds one frame. The largest answers are screenshots: a
// 1280×900 PNG is well under 2 MB, base64 included; 64 MB means the peer
// is not Firefox.
const MaxFrame = 64 << 20

// Hello is the greeting Firefox sends on a new connection.
type Hello struct {
	ApplicationType string `json:"applicationType"`
	Protocol        int    `json:"marionetteProtocol"`
}

// Error is an error answer: Name is the WebDriver error code ("insecure
// certificate", "no such element", "timeout"...).
type Error struct {
	Name       string `json:"error"`
	Message    string `json:"message"`
	Stacktrace string `json:"stacktrace"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "marionette: " + e.Name
	}
	return "marionette: " + e.Name + ": " + e.Message
}

// IsError reports whether err is a Marionette error answer named name.
func IsError(err error, name string) bool {
	var e *Error
	return errors.As(err, &e) && e.Name == name
}

// ErrClosed is returned by calls on a closed client, or after Firefox
// closed the connection.
var ErrClosed = errors.New("marionette: connection closed")

// Client is one connection to Firefox. Calls may be made from several
// goroutines; Firefox answers each by its id.
type Client struct {
	Hello Hello

	conn net.Conn
	wmu  sync.Mutex // one frame written at a time

	mu      sync.Mutex
	next    uint32
	pending map[uint32]chan reply
	err     error // why the reader stopped
	done    chan struct{}
}

type reply struct {
	err    json.RawMessage
	result json.RawMessage
}

// Dial connects to Marionette at addr and reads its greeting.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("marionette: %w", err)
	}
	return newClient(ctx, conn)
}

func newClient(ctx context.Context, conn net.Conn) (*Client, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	r := bufio.NewReader(conn)
	frame, err := ReadFrame(r)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("marionette: read greeting: %w", err)
	}
	c := &Client{conn: conn, pending: map[uint32]chan reply{}, done: make(chan struct{})}
	if err := json.Unmarshal(frame, &c.Hello); err != nil || c.Hello.Protocol != 3 {
		conn.Close()
		return nil, fmt.Errorf("marionette: greeting %q is not Marionette protocol 3 (is this Firefox's --marionette port?)", clip(frame))
	}
	go c.read(r)
	return c, nil
}

// Call sends command with params (nil for none) and decodes the result
// into result (nil to drop it). An error answer is an *Error. When ctx
// ends first, Call returns ctx's error; Firefox's late answer is dropped,
// and the client stays usable.
func (c *Client) Call(ctx context.Context, command string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	msg, err := json.Marshal([]any{0, id, command, params})
	if err != nil {
		return fmt.Errorf("marionette: %s: %w", command, err)
	}
	c.wmu.Lock()
	err = WriteFrame(c.conn, msg)
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("marionette: %s: %w", command, err)
	}
	select {
	case r := <-ch:
		if len(r.err) > 0 && string(r.err) != "null" {
			e := &Error{}
			if err := json.Unmarshal(r.err, e); err != nil || e.Name == "" {
				return fmt.Errorf("marionette: %s: unreadable error %q", command, clip(r.err))
			}
			return e
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(r.result, result); err != nil {
			return fmt.Errorf("marionette: %s: result %q: %w", command, clip(r.result), err)
		}
		return nil
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read dispatches answers to their calls until the connection ends.
func (c *Client) read(r *bufio.Reader) {
	var err error
	for {
		var frame []byte
		if frame, err = ReadFrame(r); err != nil {
			break
		}
		id, rep, perr := parseReply(frame)
		if perr != nil {
			err = perr
			break
		}
		c.mu.Lock()
		ch := c.pending[id]
		c.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	} else {
		err = fmt.Errorf("marionette: %w", err)
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
	c.conn.Close()
}

// Close ends the connection (Firefox keeps running).
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// ReadFrame reads one frame: ASCII digits, ':', then that many bytes.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	n := 0
	for digits := 0; ; digits++ {
		b, err := r.ReadByte()
		if err != nil {
			if digits > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == ':' && digits > 0 {
			break
		}
		if b < '0' || b > '9' || digits >= 9 {
			return nil, fmt.Errorf("frame length: unexpected byte %q after %d digits", b, digits)
		}
		n = n*10 + int(b-'0')
	}
	if n > MaxFrame {
		return nil, fmt.Errorf("frame of %d bytes, more than %d", n, MaxFrame)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// WriteFrame writes msg as one frame.
func WriteFrame(w io.Writer, msg []byte) error {
	_, err := w.Write(append(strconv.AppendInt(nil, int64(len(msg)), 10), append([]byte{':'}, msg...)...))
	return err
}

// parseReply reads an answer frame, [1, id, error, result].
func parseReply(frame []byte) (uint32, reply, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(frame, &parts); err != nil || len(parts) != 4 {
		return 0, reply{}, fmt.Errorf("answer %q is not [1, id, error, result]", clip(frame))
	}
	var typ int
	var id uint32
	if json.Unmarshal(parts[0], &typ) != nil || typ != 1 || json.Unmarshal(parts[1], &id) != nil {
		return 0, reply{}, fmt.Errorf("answer %q is not [1, id, error, result]", clip(frame))
	}
	return id, reply{err: parts[2], result: parts[3]}, nil
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
