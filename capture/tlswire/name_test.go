package tlswire

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

func TestNameString(t *testing.T) {
	email := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	for _, tc := range []struct {
		name pkix.Name
		want string
	}{
		{pkix.Name{CommonName: "bank.lab.test"}, "CN=bank.lab.test"},
		// goproxy's CA: the attribute Go leaves as an OID, in IA5String.
		{pkix.Name{CommonName: "goproxy.github.io", Organization: []string{"GoProxy"},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: email, Value: "goproxy@github.io"}}},
			"emailAddress=goproxy@github.io,CN=goproxy.github.io,O=GoProxy"},
		{pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: email, Value: `a,b+c"<x>;\ @lab.test`}}},
			`emailAddress=a\,b\+c\"\<x\>\;\\ @lab.test`},
		{pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: email, Value: " #x "}}}, `emailAddress=\ #x\ `},
		// Other unknown attributes stay as Go writes them.
		{pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 3}, Value: "x"}}}, "1.2.3=#130178"},
	} {
		if got := NameString(tc.name); got != tc.want {
			t.Errorf("NameString(%v) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
