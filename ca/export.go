package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// Format is an export format for a CA certificate.
type Format string

// The export formats, and the file extension each is written with.
const (
	FormatPEM Format = "pem" // .pem: Linux trust stores, curl --cacert, Firefox
	FormatDER Format = "der" // .cer: Windows, Android, macOS double-click
	FormatP12 Format = "p12" // .p12: macOS Keychain, Windows, Firefox "Your Certificates" (with key)
)

// ParseFormat accepts a format name or a file extension.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), ".")) {
	case "pem", "crt":
		return FormatPEM, nil
	case "der", "cer":
		return FormatDER, nil
	case "p12", "pfx", "pkcs12":
		return FormatP12, nil
	}
	return "", fmt.Errorf("ca: unknown export format %q: use pem, der or p12", s)
}

// Ext is the conventional file extension for the format.
func (f Format) Ext() string {
	switch f {
	case FormatDER:
		return ".cer"
	case FormatP12:
		return ".p12"
	}
	return ".pem"
}

// ExportOptions configures Export.
type ExportOptions struct {
	Format Format
	// Password encrypts a PKCS#12 file. A certificate-only file may have an
	// empty password; one that carries the key may not.
	Password string
	// WithKey puts the CA's private key into a PKCS#12 file, for moving the
	// CA to another machine. Anyone holding that file and its password can
	// forge certificates for every name the CA permits.
	WithKey bool
}

// Export encodes the root's certificate (and, for PKCS#12 with WithKey, its
// key) in the given format.
//
// PKCS#12 files use go-pkcs12's Modern encoder: AES-256-CBC with PBKDF2
// (HMAC-SHA-256) and an HMAC-SHA-256 MAC, what OpenSSL 3 writes by default.
// The legacy RC2/3DES encodings are refused by OpenSSL 3 without its legacy
// provider, and are not offered.
func Export(r *Root, opts ExportOptions) ([]byte, error) {
	switch opts.Format {
	case FormatPEM, "":
		if opts.WithKey {
			return nil, errors.New("ca: --with-key is only for p12 exports; the PEM key is already in the CA directory")
		}
		return CertPEM(r.Cert), nil
	case FormatDER:
		if opts.WithKey {
			return nil, errors.New("ca: --with-key is only for p12 exports")
		}
		return append([]byte(nil), r.Cert.Raw...), nil
	case FormatP12:
		if opts.WithKey {
			if opts.Password == "" {
				return nil, errors.New("ca: a p12 that carries the CA key needs a password: give --password or --password-file")
			}
			der, err := pkcs12.Modern.Encode(r.Key, r.Cert, nil, opts.Password)
			if err != nil {
				return nil, fmt.Errorf("ca: encode p12: %w", err)
			}
			return der, nil
		}
		// A trust-store p12: the certificate alone, under its CN, like
		// mitmproxy's mitmproxy-ca-cert.p12.
		der, err := pkcs12.Modern.EncodeTrustStoreEntries([]pkcs12.TrustStoreEntry{
			{Cert: r.Cert, FriendlyName: r.Cert.Subject.CommonName},
		}, opts.Password)
		if err != nil {
			return nil, fmt.Errorf("ca: encode p12: %w", err)
		}
		return der, nil
	}
	return nil, fmt.Errorf("ca: unknown export format %q", opts.Format)
}

// DecodeP12 reads back what Export wrote in PKCS#12: the certificate and, when
// present, the key. It exists for checks and tests.
func DecodeP12(data []byte, password string) (*x509.Certificate, any, error) {
	if key, cert, err := pkcs12.Decode(data, password); err == nil {
		return cert, key, nil
	}
	certs, err := pkcs12.DecodeTrustStore(data, password)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: decode p12: %w", err)
	}
	if len(certs) != 1 {
		return nil, nil, fmt.Errorf("ca: p12 holds %d certificates, want 1", len(certs))
	}
	return certs[0], nil, nil
}
