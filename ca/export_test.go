package ca

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestExport(t *testing.T) {
	r, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    ExportOptions
		check   func(t *testing.T, data []byte)
		wantErr string
	}{
		{name: "pem", opts: ExportOptions{Format: FormatPEM}, check: func(t *testing.T, data []byte) {
			b, rest := pem.Decode(data)
			if b == nil || b.Type != "CERTIFICATE" || len(rest) != 0 {
				t.Fatalf("PEM export is not one CERTIFICATE block: %q", data)
			}
			if c, _ := x509.ParseCertificate(b.Bytes); c == nil || !c.Equal(r.Cert) {
				t.Error("PEM export holds another certificate")
			}
		}},
		{name: "der", opts: ExportOptions{Format: FormatDER}, check: func(t *testing.T, data []byte) {
			if c, err := x509.ParseCertificate(data); err != nil || !c.Equal(r.Cert) {
				t.Errorf("DER export does not parse to the root: %v", err)
			}
		}},
		{name: "p12 cert only, no password", opts: ExportOptions{Format: FormatP12}, check: func(t *testing.T, data []byte) {
			c, key, err := DecodeP12(data, "")
			if err != nil || !c.Equal(r.Cert) || key != nil {
				t.Errorf("DecodeP12 = %v, key %T; want the root and no key", err, key)
			}
		}},
		{name: "p12 with key", opts: ExportOptions{Format: FormatP12, WithKey: true, Password: "s3cret"}, check: func(t *testing.T, data []byte) {
			c, key, err := DecodeP12(data, "s3cret")
			if err != nil || !c.Equal(r.Cert) || key == nil {
				t.Fatalf("DecodeP12 = %v, key %T; want the root and its key", err, key)
			}
			if _, _, err := DecodeP12(data, "wrong"); err == nil {
				t.Error("DecodeP12 with a wrong password succeeded")
			}
		}},
		{name: "p12 with key needs a password", opts: ExportOptions{Format: FormatP12, WithKey: true}, wantErr: "needs a password"},
		{name: "pem with key", opts: ExportOptions{Format: FormatPEM, WithKey: true}, wantErr: "only for p12"},
		{name: "unknown", opts: ExportOptions{Format: "jks"}, wantErr: "unknown export format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Export(r, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Export(%+v) = %v, want an error containing %q", tc.opts, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, data)
		})
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"PEM": FormatPEM, ".crt": FormatPEM, "cer": FormatDER, "pfx": FormatP12} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseFormat("jks"); err == nil {
		t.Error("ParseFormat(jks) succeeded")
	}
}

func TestInstructions(t *testing.T) {
	in := InstructionsFor{PEMPath: "/h/ca.pem", DERPath: "/h/ca.cer", Nickname: "Lab CA", Fingerprint: "AA:BB"}
	for _, p := range Platforms() {
		text, err := Instructions(p, in)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "add:") || !strings.Contains(text, "remove:") || !strings.Contains(text, "AA:BB") {
			t.Errorf("Instructions(%s) lacks add, remove or the fingerprint:\n%s", p, text)
		}
	}
	if text, _ := Instructions(PlatformAndroid, in); !strings.Contains(text, "Android 7") {
		t.Errorf("Android instructions do not warn that apps ignore user CAs:\n%s", text)
	}
	if _, err := ParsePlatform("amiga"); err == nil {
		t.Error("ParsePlatform(amiga) succeeded")
	}
}
