package netns_test

import (
	"context"
	"fmt"

	"github.com/mitmlab/mitmlab/labs/netns"
)

// A victim routed through an attacker's router, which redirects its HTTPS
// to a local port (a transparent proxy listening there). Needs root.
func ExampleNewPath() {
	ctx := context.Background()
	if err := netns.Check(); err != nil {
		fmt.Println(err) // what the machine lacks, and how to get it
		return
	}
	path, err := netns.NewPath(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer path.Close() // the namespaces, and with them the links and the rules
	ln, _ := path.Attacker.Listen("tcp", path.AttackerLAN.String()+":8080")
	defer ln.Close()
	path.Redirect(ctx, 8080, 443)
	out, _ := path.Victim.Command(ctx, "curl", "-sk", "https://"+path.BankAddr.String()+"/").CombinedOutput()
	fmt.Printf("%s", out)
}
