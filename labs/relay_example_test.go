package labs_test

import (
	"fmt"
	"io"
	"net"

	"github.com/mitmlab/mitmlab/labs"
)

// A relay in front of a server that echoes what it gets: the form goes out
// with the attacker's account, and the account is swapped back in what
// returns, so the client reads what it sent.
func ExampleStartRelay() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		c, _ := ln.Accept()
		io.Copy(c, c)
		c.Close()
	}()
	r, err := labs.StartRelay(labs.RelayOptions{Target: ln.Addr().String(), Rewrite: &labs.FieldRewrite{Field: "to", Value: "6666-6666-6666"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	c, _ := net.Dial("tcp", r.Addr)
	c.Write([]byte("amount=250.00&to=1234-5678-9012"))
	c.(*net.TCPConn).CloseWrite()
	back, _ := io.ReadAll(c)
	fmt.Printf("the client reads: %s\n", back)
	for _, e := range r.Events() {
		if e.What != "connect" {
			fmt.Printf("%s: %s → %s\n", e.What, e.From, e.To)
		}
	}
	// Output:
	// the client reads: amount=250.00&to=1234-5678-9012
	// rewrite: to=1234-5678-9012 → to=6666-6666-6666
	// rewrite-back: 6666-6666-6666 → 1234-5678-9012
}
