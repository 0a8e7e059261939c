package mitm

import (
	"testing"

	"github.com/mitmlab/mitmlab/ca"
)

func BenchmarkCertInfo(b *testing.B) {
	pki, err := ca.NewPKI(ca.PKIOptions{})
	if err != nil {
		b.Fatal(err)
	}
	chain, err := pki.Issue(ca.ProfileValid, []string{"bank.lab.test"}, ca.IssueOptions{})
	if err != nil {
		b.Fatal(err)
	}
	leaf := chain.Leaf()
	for b.Loop() {
		certInfo(leaf)
	}
}
