package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The files of a CA directory. The certificate is public (0644); the key is
// the whole of the CA's power (0600).
const (
	CertFile = "ca.pem"
	KeyFile  = "ca-key.pem"
)

// Errors Load and Save return; test with errors.Is.
var (
	// ErrNoCA means the directory holds no CA yet.
	ErrNoCA = errors.New("ca: no CA found")
	// ErrExists means Save was asked not to replace an existing CA.
	ErrExists = errors.New("ca: a CA already exists")
)

// KeyModeError is returned by Load when the key file can be read by group or
// others. mkcert and ssh refuse such keys for the same reason: anyone who can
// read it can forge certificates that this machine's browsers trust.
type KeyModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *KeyModeError) Error() string {
	return fmt.Sprintf("ca: key file %s can be read by other users (mode %04o); run `chmod 600 %s` and try again",
		e.Path, e.Mode.Perm(), e.Path)
}

// UnsafePathError is returned when a directory or file that decides what
// mitmlab trusts (a CA directory; in the CLI also its home and config file)
// can be changed by someone other than the user running it: it is writable
// by group or others, or it belongs to another user. Whoever can write a CA
// directory can swap the CA in it, and with it what the proxy forges and
// what a lab's browsers trust. OpenSSH's StrictModes refuses ~/.ssh and
// authorized_keys in the same two cases.
type UnsafePathError struct {
	Path string
	Mode fs.FileMode // as stat reports it, with fs.ModeDir for a directory
	// Owner is the uid of the owner when the owner is the problem (neither
	// the user running nor root), and -1 when the mode is.
	Owner int
	// User is the effective uid of the process that refused the path.
	User int
}

// Fix is the command that makes the path safe. Giving a file to a user
// takes root, hence the sudo when the user is not root.
func (e *UnsafePathError) Fix() string {
	if e.Owner < 0 {
		return "chmod go-w " + e.Path
	}
	sudo, r := "", ""
	if e.User != 0 {
		sudo = "sudo "
	}
	if e.Mode.IsDir() {
		r = "-R "
	}
	return fmt.Sprintf("%schown %s%d %s", sudo, r, e.User, e.Path)
}

func (e *UnsafePathError) Error() string {
	if e.Owner >= 0 {
		return fmt.Sprintf("ca: %s belongs to another user (uid %d, you are uid %d), who can change it at will; use one of your own, or run `%s`",
			e.Path, e.Owner, e.User, e.Fix())
	}
	return fmt.Sprintf("ca: %s is writable by other users (mode %04o), so they could swap the CA in it; run `%s` and try again",
		e.Path, e.Mode.Perm(), e.Fix())
}

// CheckPath returns an *UnsafePathError when path is writable by group or
// others or belongs to a user other than the one running (and not root),
// nil when it is safe or does not exist (mitmlab creates what is missing
// 0700 or 0755 itself), and another error when it cannot be examined. It
// follows symbolic links: what counts is what is read. Windows has no such
// modes, so there it checks nothing.
//
// A path that belongs to another user is refused whatever its mode: its
// owner can chmod it at any time, so its mode proves nothing. That holds
// for root too: a root-run mitmlab (live capture needs privileges) that
// read a student's home would hand the student the CA and a config that
// decides where root writes files. Root's own files are accepted, since
// root could change anything anyway.
func CheckPath(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ca: check %s: %w", path, err)
	}
	user := os.Geteuid()
	if owner, ok := fileOwner(fi); ok && owner != user && owner != 0 {
		return &UnsafePathError{Path: path, Mode: fi.Mode(), Owner: owner, User: user}
	}
	// Group-writable counts too, as in OpenSSH: the group may hold anyone.
	if fi.Mode().Perm()&0o022 != 0 {
		return &UnsafePathError{Path: path, Mode: fi.Mode(), Owner: -1, User: user}
	}
	return nil
}

// Save writes root into dir as CertFile (0644) and KeyFile (0600). It
// refuses to replace an existing CA unless force is set. The directory is
// written whole under a temporary name and renamed into place, so a crash
// leaves either the old CA or the new one, never half of each.
func Save(dir string, r *Root, force bool) error {
	certPEM, keyPEM, err := r.encodePEM()
	if err != nil {
		return err
	}
	return writeDirAtomic(dir, []fileSpec{
		{CertFile, certPEM, 0o644},
		{KeyFile, keyPEM, 0o600},
	}, force)
}

// Load reads the CA in dir. It returns an error wrapping ErrNoCA when there
// is none, an *UnsafePathError when others can change dir (see CheckPath),
// a *KeyModeError when the key is readable by others, and a descriptive
// error when the files are damaged or do not belong together.
func Load(dir string) (*Root, error) {
	return loadPair(dir, CertFile, KeyFile)
}

func loadPair(dir, certName, keyName string) (*Root, error) {
	if err := CheckPath(dir); err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	certPEM, certErr := os.ReadFile(certPath)
	keyInfo, keyErr := os.Stat(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w in %s", ErrNoCA, dir)
	case errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("ca: %s has a key but no certificate (%s is missing): the CA is incomplete", dir, certName)
	case errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("ca: %s has a certificate but no key (%s is missing): the CA is incomplete", dir, keyName)
	case certErr != nil:
		return nil, fmt.Errorf("ca: read certificate: %w", certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("ca: read key: %w", keyErr)
	}
	if runtime.GOOS != "windows" && keyInfo.Mode().Perm()&0o077 != 0 {
		return nil, &KeyModeError{Path: keyPath, Mode: keyInfo.Mode()}
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ca: read key: %w", err)
	}
	r, err := ParseRoot(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w (files %s and %s)", err, certPath, keyPath)
	}
	return r, nil
}

// ParseRoot parses a CA certificate and its private key from PEM. The key may
// be PKCS#8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE
// KEY"). It checks that the certificate is a CA and that the key is its key.
func ParseRoot(certPEM, keyPEM []byte) (*Root, error) {
	certBlock := findBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" })
	if certBlock == nil {
		return nil, errors.New("ca: no PEM CERTIFICATE block in the certificate file")
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: parse certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("ca: certificate %q is not a CA certificate (basicConstraints CA:TRUE is missing)", cert.Subject.CommonName)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("ca: the key does not belong to certificate %q", cert.Subject.CommonName)
	}
	return &Root{Cert: cert, Key: key}, nil
}

// ParseKey parses the first private key found in PEM data.
func ParseKey(keyPEM []byte) (crypto.Signer, error) {
	block := findBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") })
	if block == nil {
		return nil, errors.New("ca: no PEM PRIVATE KEY block in the key file")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("ca: the key is encrypted; decrypt it first (`openssl pkey -in KEY -out KEY.plain`) and keep the result mode 0600")
	default:
		return nil, fmt.Errorf("ca: unsupported key type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: parse key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), nil
	}
	return nil, fmt.Errorf("ca: unsupported key %T", key)
}

func findBlock(data []byte, match func(string) bool) *pem.Block {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if match(b.Type) {
			return b
		}
	}
}

// encodePEM returns the certificate and PKCS#8 key as PEM.
func (r *Root) encodePEM() (certPEM, keyPEM []byte, err error) {
	keyPEM, err = KeyPEM(r.Key)
	return CertPEM(r.Cert), keyPEM, err
}

// CertPEM encodes certificates as concatenated PEM blocks.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pemEncode("CERTIFICATE", c.Raw)...)
	}
	return out
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal key: %w", err)
	}
	return pemEncode("PRIVATE KEY", der), nil
}

type fileSpec struct {
	name string
	data []byte
	mode fs.FileMode
}

// WriteFile writes data to path through a temporary file in the same
// directory and a rename, so readers see the old file or the new one, never a
// half-written one. The mode is applied exactly, whatever the umask.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	// A rename onto a device (say /dev/null, as root) would replace it
	// with a regular file for the whole machine.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("ca: %s is not a regular file (a device, pipe or directory): give the path of a file to write", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("ca: write %s: the directory %s does not exist: create it first, or give another path", path, dir)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		// The temporary file's name is ours, not the user's: name the path.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := writeAndClose(tmp, data, mode); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	return nil
}

func writeAndClose(f *os.File, data []byte, mode fs.FileMode) error {
	// Chmod before writing, so secret bytes never sit in a file others can read.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeDirAtomic writes files into a fresh directory next to dir and renames
// it into place. With force, an existing dir is moved aside first and removed
// only once the new one is in place.
func writeDirAtomic(dir string, files []fileSpec, force bool) error {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("ca: create %s: %w", parent, err)
	}
	if _, err := os.Stat(dir); err == nil && !force {
		return fmt.Errorf("%w in %s", ErrExists, dir)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("ca: create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	for _, f := range files {
		fh, err := os.OpenFile(filepath.Join(tmp, f.name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("ca: write %s: %w", f.name, err)
		}
		if err := writeAndClose(fh, f.data, f.mode); err != nil {
			return fmt.Errorf("ca: write %s: %w", f.name, err)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("ca: install %s: %w", dir, err)
		}
		return nil
	}
	old, err := os.MkdirTemp(parent, "."+base+".old-")
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	os.Remove(old) // only the unique name is wanted
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("ca: move old %s aside: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("ca: install %s: %v; the previous CA is kept in %s", dir, err, old)
		}
		return fmt.Errorf("ca: install %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}

// LoadCert reads only the CA certificate in dir, not its key: enough to
// check who trusts it, and possible even when the key is unusable or others
// can change dir (it does not call CheckPath: ca doctor reports that).
func LoadCert(dir string) (*x509.Certificate, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoCA, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: read certificate: %w", err)
	}
	b := findBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" })
	if b == nil {
		return nil, fmt.Errorf("ca: %s holds no PEM CERTIFICATE block", filepath.Join(dir, CertFile))
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: parse %s: %w", filepath.Join(dir, CertFile), err)
	}
	return c, nil
}
