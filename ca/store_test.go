package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home", "ca")
	r, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Load(empty) = %v, want ErrNoCA", err)
	}
	if err := Save(dir, r, false); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CertFile: 0o644, KeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %04o, want %04o", name, fi.Mode().Perm(), want)
		}
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(r.Cert) {
		t.Error("Load returned another certificate than Save wrote")
	}

	// Saving again without force keeps the first CA.
	r2, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, r2, false); !errors.Is(err, ErrExists) {
		t.Fatalf("Save(existing, force=false) = %v, want ErrExists", err)
	}
	if got, _ := Load(dir); !got.Cert.Equal(r.Cert) {
		t.Fatal("Save without force replaced the CA")
	}
	if err := Save(dir, r2, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := Load(dir); !got.Cert.Equal(r2.Cert) {
		t.Fatal("Save with force did not replace the CA")
	}
	// Nothing is left behind: no temporary or old directories.
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("home holds %v, want only ca", names)
	}
}

func TestLoadRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	r, _ := NewRoot(RootOptions{})
	if err := Save(dir, r, true); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(keyPath, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		var kme *KeyModeError
		if !errors.As(err, &kme) {
			t.Fatalf("Load with key mode %04o = %v, want *KeyModeError", mode, err)
		}
		if want := "chmod 600 " + keyPath; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not tell the fix %q", err, want)
		}
	}
	if err := os.Chmod(keyPath, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Errorf("Load with key mode 0400 = %v, want success", err)
	}
}

// otherUID is a uid that is neither root nor the test's: nobody's.
const otherUID = 65534

func TestCheckPath(t *testing.T) {
	base := t.TempDir()
	me := os.Geteuid()
	tests := []struct {
		name  string
		dir   bool
		mode  os.FileMode
		owner int // -1: leave it the test's
		// wantOwner is the UnsafePathError's Owner; -2 means no error.
		wantOwner int
	}{
		{"dir 0700", true, 0o700, -1, -2},
		{"dir 0755", true, 0o755, -1, -2},
		{"dir 0750", true, 0o750, -1, -2},
		{"dir 0775 (group-writable)", true, 0o775, -1, -1},
		{"dir 0757 (writable by others)", true, 0o757, -1, -1},
		{"dir 0777", true, 0o777, -1, -1},
		{"dir 1777 (sticky does not help: others can still plant files)", true, 0o777 | os.ModeSticky, -1, -1},
		{"file 0600", false, 0o600, -1, -2},
		{"file 0644", false, 0o644, -1, -2},
		{"file 0664", false, 0o664, -1, -1},
		{"file 0666", false, 0o666, -1, -1},
		{"file 0602", false, 0o602, -1, -1},
		{"dir 0700 owned by another user", true, 0o700, otherUID, otherUID},
		{"file 0600 owned by another user", false, 0o600, otherUID, otherUID},
		{"dir 0755 owned by root", true, 0o755, 0, -2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && me != 0 {
				t.Skip("only root can give a file to another owner")
			}
			path := filepath.Join(base, fmt.Sprint(i))
			if tc.dir {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if err := os.Chown(path, tc.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckPath(path)
			var ue *UnsafePathError
			if tc.wantOwner == -2 {
				if err != nil {
					t.Errorf("CheckPath(%s) = %v, want nil", tc.name, err)
				}
				return
			}
			if !errors.As(err, &ue) {
				t.Fatalf("CheckPath(%s) = %v, want *UnsafePathError", tc.name, err)
			}
			if ue.Path != path || ue.Owner != tc.wantOwner || ue.User != me || ue.Mode.Perm() != tc.mode.Perm() || ue.Mode.IsDir() != tc.dir {
				t.Errorf("CheckPath(%s) = %+v, want path %s, owner %d, user %d, mode %v", tc.name, ue, path, tc.wantOwner, me, tc.mode)
			}
			wantFix := "chmod go-w " + path
			if tc.wantOwner >= 0 {
				wantFix = fmt.Sprintf("chown %d %s", me, path)
				if tc.dir {
					wantFix = fmt.Sprintf("chown -R %d %s", me, path)
				}
			}
			if ue.Fix() != wantFix || !strings.Contains(err.Error(), "`"+wantFix+"`") {
				t.Errorf("CheckPath(%s): Fix() = %q, error %q; want the fix %q", tc.name, ue.Fix(), err, wantFix)
			}
		})
	}
	if err := CheckPath(filepath.Join(base, "missing")); err != nil {
		t.Errorf("CheckPath(missing) = %v, want nil: mitmlab creates what is missing itself", err)
	}
}

func TestUnsafePathErrorFix(t *testing.T) {
	for _, tc := range []struct {
		e    UnsafePathError
		want string
	}{
		{UnsafePathError{Path: "/h", Mode: fs.ModeDir | 0o777, Owner: -1, User: 1000}, "chmod go-w /h"},
		{UnsafePathError{Path: "/h/config.yaml", Mode: 0o666, Owner: -1, User: 0}, "chmod go-w /h/config.yaml"},
		{UnsafePathError{Path: "/h", Mode: fs.ModeDir | 0o700, Owner: 1001, User: 1000}, "sudo chown -R 1000 /h"},
		{UnsafePathError{Path: "/h", Mode: fs.ModeDir | 0o700, Owner: 1001, User: 0}, "chown -R 0 /h"},
		{UnsafePathError{Path: "/c.yaml", Mode: 0o600, Owner: 1001, User: 1000}, "sudo chown 1000 /c.yaml"},
	} {
		if got := tc.e.Fix(); got != tc.want {
			t.Errorf("%+v.Fix() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

// TestLoadRefusesUnsafeDir: a CA or PKI directory others can write is
// refused before anything in it is read.
func TestLoadRefusesUnsafeDir(t *testing.T) {
	home := t.TempDir()
	caDir, pkiDir := filepath.Join(home, "ca"), filepath.Join(home, "pki")
	r, _ := NewRoot(RootOptions{})
	if err := Save(caDir, r, false); err != nil {
		t.Fatal(err)
	}
	p, err := NewPKI(PKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := SavePKI(pkiDir, p, false); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{caDir, pkiDir} {
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	var ue *UnsafePathError
	if _, err := Load(caDir); !errors.As(err, &ue) || ue.Path != caDir {
		t.Errorf("Load(0777 dir) = %v, want *UnsafePathError for %s", err, caDir)
	}
	if _, err := LoadPKI(pkiDir, nil); !errors.As(err, &ue) || ue.Path != pkiDir {
		t.Errorf("LoadPKI(0777 dir) = %v, want *UnsafePathError for %s", err, pkiDir)
	}
	if _, _, err := LoadOrCreatePKI(pkiDir, PKIOptions{}); !errors.As(err, &ue) {
		t.Errorf("LoadOrCreatePKI(0777 dir) = %v, want *UnsafePathError, not a new PKI", err)
	}
	// ca doctor reads the certificate of such a CA to report on it.
	if _, err := LoadCert(caDir); err != nil {
		t.Errorf("LoadCert(0777 dir) = %v, want the certificate", err)
	}
	for _, dir := range []string{caDir, pkiDir} {
		os.Chmod(dir, 0o755)
	}
	if _, err := Load(caDir); err != nil {
		t.Errorf("Load(0755 dir) = %v, want success", err)
	}
	if _, err := LoadPKI(pkiDir, nil); err != nil {
		t.Errorf("LoadPKI(0755 dir) = %v, want success", err)
	}
}

func TestLoadDamaged(t *testing.T) {
	r, _ := NewRoot(RootOptions{})
	other, _ := NewRoot(RootOptions{})
	certPEM, keyPEM, _ := r.encodePEM()
	_, otherKey, _ := other.encodePEM()
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTemplate("bank.lab.test", r.Cert.NotBefore, r.Cert.NotAfter), r.Cert, leafKey.Public(), r.Key)
	leafKeyPEM, _ := KeyPEM(leafKey)
	tests := []struct {
		name       string
		cert, key  []byte
		skipCert   bool
		skipKey    bool
		wantSubstr string
	}{
		{name: "no cert", key: keyPEM, skipCert: true, wantSubstr: "no certificate"},
		{name: "no key", cert: certPEM, skipKey: true, wantSubstr: "no key"},
		{name: "garbage cert", cert: []byte("hello"), key: keyPEM, wantSubstr: "no PEM CERTIFICATE"},
		{name: "garbage key", cert: certPEM, key: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), wantSubstr: "parse key"},
		{name: "other key", cert: certPEM, key: otherKey, wantSubstr: "does not belong"},
		{name: "not a CA", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), key: leafKeyPEM, wantSubstr: "not a CA"},
		{name: "encrypted", cert: certPEM, key: []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), wantSubstr: "encrypted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if !tc.skipCert {
				os.WriteFile(filepath.Join(dir, CertFile), tc.cert, 0o644)
			}
			if !tc.skipKey {
				os.WriteFile(filepath.Join(dir, KeyFile), tc.key, 0o600)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantSubstr) {
				t.Errorf("Load = %v, want an error containing %q", err, tc.wantSubstr)
			}
		})
	}
}

func TestParseKeyFormats(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(k)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	rk, _ := GenerateKey(RSA2048)
	pkcs1 := x509.MarshalPKCS1PrivateKey(rk.(*rsa.PrivateKey))
	for name, block := range map[string]*pem.Block{
		"SEC 1":  {Type: "EC PRIVATE KEY", Bytes: sec1},
		"PKCS#8": {Type: "PRIVATE KEY", Bytes: pkcs8},
		"PKCS#1": {Type: "RSA PRIVATE KEY", Bytes: pkcs1},
	} {
		if _, err := ParseKey(pem.EncodeToMemory(block)); err != nil {
			t.Errorf("ParseKey(%s) = %v", name, err)
		}
	}
}

// opensslFixtures pair a certificate with its key, as OpenSSL wrote them
// (testdata/README.md).
var opensslFixtures = [][2]string{
	{"ec-ca.pem", "ec-ca-key.sec1.pem"},
	{"ec-ca.pem", "ec-ca-key.pkcs8.pem"},
	{"rsa-ca.pem", "rsa-ca-key.pkcs1.pem"},
}

func TestParseRootOpenSSL(t *testing.T) {
	for _, pair := range opensslFixtures {
		t.Run(pair[1], func(t *testing.T) {
			c, err := os.ReadFile(filepath.Join("testdata/openssl", pair[0]))
			if err != nil {
				t.Fatal(err)
			}
			k, err := os.ReadFile(filepath.Join("testdata/openssl", pair[1]))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseRoot(c, k)
			if err != nil {
				t.Fatalf("ParseRoot(%s, %s) = %v", pair[0], pair[1], err)
			}
			if got := r.Constraints().String(); got != "DNS fixture.invalid" {
				t.Errorf("constraints = %q, want DNS fixture.invalid", got)
			}
			// An Authority built on a foreign root mints leaves that chain to it.
			a, err := NewAuthority(r, AuthorityOptions{})
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := a.Certificate("www.fixture.invalid")
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(r.Cert)
			if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "www.fixture.invalid"}); err != nil {
				t.Errorf("leaf from an OpenSSL-made root does not verify: %v", err)
			}
		})
	}
	// The key of one CA with the certificate of another is refused.
	c, _ := os.ReadFile("testdata/openssl/ec-ca.pem")
	k, _ := os.ReadFile("testdata/openssl/rsa-ca-key.pkcs1.pem")
	if _, err := ParseRoot(c, k); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("ParseRoot(EC cert, RSA key) = %v, want a mismatch error", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secret.pem")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o600 {
		t.Errorf("file = %q mode %04o, want \"two\" 0600", b, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary files left)", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

// FuzzParseRoot feeds arbitrary bytes to the CA loading path: it must never
// panic, and whatever it accepts must be a CA whose key matches.
func FuzzParseRoot(f *testing.F) {
	r, err := NewRoot(RootOptions{})
	if err != nil {
		f.Fatal(err)
	}
	certPEM, keyPEM, _ := r.encodePEM()
	f.Add(certPEM, keyPEM)
	f.Add(certPEM, []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), keyPEM)
	f.Add([]byte{}, []byte{})
	for _, pair := range opensslFixtures {
		c, _ := os.ReadFile(filepath.Join("testdata/openssl", pair[0]))
		k, _ := os.ReadFile(filepath.Join("testdata/openssl", pair[1]))
		f.Add(c, k)
	}
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		root, err := ParseRoot(certPEM, keyPEM)
		if err != nil {
			return
		}
		if !root.Cert.IsCA {
			t.Fatal("ParseRoot accepted a non-CA certificate")
		}
		if !root.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(root.Key.Public()) {
			t.Fatal("ParseRoot accepted a key that is not the certificate's")
		}
	})
}
