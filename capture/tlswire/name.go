package tlswire

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"regexp"
	"strings"
)

// emailAttr matches the emailAddress attribute (PKCS #9, OID
// 1.2.840.113549.1.9.1) as pkix.Name.String writes it: Go names only the
// X.520 attributes, and writes any other as its OID and DER value in hex.
var emailAttr = regexp.MustCompile(`1\.2\.840\.113549\.1\.9\.1=#([0-9a-fA-F]+)`)

// NameString writes a distinguished name as pkix.Name.String does (RFC
// 2253: most specific first), except that emailAddress reads as
// "emailAddress=…", as openssl and Wireshark show it, instead of
// "1.2.840.113549.1.9.1=#0c…". Old CAs carry one in their subject:
// goproxy's built-in CA, lab 9's leaked CA, does. The analyzer, the proxy's
// flows and the labs' reports name certificates with it, so they agree.
func NameString(n pkix.Name) string {
	s := n.String()
	if !strings.Contains(s, "1.2.840.113549.1.9.1=#") {
		return s
	}
	return emailAttr.ReplaceAllStringFunc(s, func(m string) string {
		der, err := hex.DecodeString(emailAttr.FindStringSubmatch(m)[1])
		if err != nil {
			return m
		}
		var v asn1.RawValue
		if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) > 0 || v.Class != asn1.ClassUniversal ||
			(v.Tag != asn1.TagIA5String && v.Tag != asn1.TagUTF8String && v.Tag != asn1.TagPrintableString) {
			return m
		}
		return "emailAddress=" + escapeRDNValue(string(v.Bytes))
	})
}

// escapeRDNValue escapes an attribute value as RFC 4514 section 2.4 asks,
// as pkix.Name.String does for the attributes it knows.
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;`, r),
			i == 0 && (r == ' ' || r == '#'),
			i == len(v)-1 && r == ' ':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\` + hex.EncodeToString([]byte{byte(r)}))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
