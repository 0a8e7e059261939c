package ca

import (
	"fmt"
	"strings"
)

// Platform names a system or program whose trust store a person may add the
// lab CA to.
type Platform string

// The platforms Instructions knows.
const (
	PlatformDebian   Platform = "debian"
	PlatformFedora   Platform = "fedora"
	PlatformMacOS    Platform = "macos"
	PlatformWindows  Platform = "windows"
	PlatformFirefox  Platform = "firefox"
	PlatformChromium Platform = "chromium"
	PlatformAndroid  Platform = "android"
)

// Platforms lists every platform Instructions knows, in the order they are
// printed.
func Platforms() []Platform {
	return []Platform{PlatformDebian, PlatformFedora, PlatformMacOS, PlatformWindows, PlatformFirefox, PlatformChromium, PlatformAndroid}
}

// ParsePlatform accepts a platform name and a few common aliases.
func ParsePlatform(s string) (Platform, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debian", "ubuntu":
		return PlatformDebian, nil
	case "fedora", "rhel", "centos":
		return PlatformFedora, nil
	case "macos", "mac", "darwin", "osx":
		return PlatformMacOS, nil
	case "windows", "win":
		return PlatformWindows, nil
	case "firefox":
		return PlatformFirefox, nil
	case "chromium", "chrome":
		return PlatformChromium, nil
	case "android":
		return PlatformAndroid, nil
	}
	names := make([]string, 0, 7)
	for _, p := range Platforms() {
		names = append(names, string(p))
	}
	return "", fmt.Errorf("ca: unknown platform %q: use one of %s", s, strings.Join(names, ", "))
}

// InstructionsFor is what Instructions fills in.
type InstructionsFor struct {
	PEMPath     string // the CA certificate as PEM
	DERPath     string // the same as DER (.cer); export it with `mitmlab ca export --format der`
	Nickname    string // the CA's CN
	Fingerprint string // SHA-256, to compare with what the system shows
}

// Instructions returns how to add the CA to a platform's trust store, and
// how to remove it again, as text for a person.
func Instructions(p Platform, in InstructionsFor) (string, error) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	switch p {
	case PlatformDebian:
		w("Debian / Ubuntu (system store: OpenSSL, curl, wget, Go programs)")
		w("  add:     sudo cp %s /usr/local/share/ca-certificates/mitmlab-ca.crt", in.PEMPath)
		w("           sudo update-ca-certificates")
		w("  remove:  sudo rm /usr/local/share/ca-certificates/mitmlab-ca.crt")
		w("           sudo update-ca-certificates --fresh")
		w("  note:    Chromium and Firefox do not read this store; see chromium and firefox.")
	case PlatformFedora:
		w("Fedora / RHEL (system store: OpenSSL, GnuTLS, NSS-based tools via p11-kit)")
		w("  add:     sudo cp %s /etc/pki/ca-trust/source/anchors/mitmlab-ca.pem", in.PEMPath)
		w("           sudo update-ca-trust")
		w("  remove:  sudo rm /etc/pki/ca-trust/source/anchors/mitmlab-ca.pem")
		w("           sudo update-ca-trust")
	case PlatformMacOS:
		w("macOS (System keychain: Safari, Chrome, curl, most apps)")
		w("  add:     sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s", in.PEMPath)
		w("  remove:  sudo security delete-certificate -c %q /Library/Keychains/System.keychain", in.Nickname)
		w("  note:    Keychain Access shows the SHA-256 fingerprint under Details; compare it.")
	case PlatformWindows:
		w("Windows (machine store: Edge, Chrome, most apps), in an administrator prompt")
		w("  add:     certutil -addstore -f Root %s", in.DERPath)
		w("  remove:  certutil -delstore Root %q", in.Nickname)
		w("  note:    without admin rights, `certutil -user -addstore Root ...` trusts it for your user only.")
	case PlatformFirefox:
		w("Firefox (its own NSS store, on every system)")
		w("  add:     mitmlab ca trust --nssdb <profile directory>   (Linux, with certutil)")
		w("           or Settings > Privacy & Security > Certificates > View Certificates > Authorities >")
		w("           Import %s, tick \"Trust this CA to identify websites\" only.", in.PEMPath)
		w("  remove:  mitmlab ca untrust --nssdb <profile directory>, or select %q there and Delete.", in.Nickname)
		w("  note:    profile directories are listed in about:profiles. Firefox reads the system store only")
		w("           when security.enterprise_roots.enabled is true (the default on Windows and macOS).")
	case PlatformChromium:
		w("Chromium / Chrome on Linux (NSS store ~/.pki/nssdb)")
		w("  add:     mitmlab ca trust            (finds ~/.pki/nssdb and Firefox profiles; needs certutil)")
		w("  remove:  mitmlab ca untrust")
		w("  note:    on macOS and Windows, Chrome uses the system store; see macos and windows.")
	case PlatformAndroid:
		w("Android")
		w("  add:     copy %s to the device, then Settings > Security > Encryption & credentials >", in.DERPath)
		w("           Install a certificate > CA certificate.")
		w("  remove:  Settings > Security > Encryption & credentials > Trusted credentials > User > %q > Remove.", in.Nickname)
		w("  note:    since Android 7 (API 24), apps ignore user-added CAs unless their network security")
		w("           config opts in with <certificates src=\"user\"/>; Chrome for Android honours them.")
		w("           Only a rooted device or an emulator image can add a system CA.")
	default:
		return "", fmt.Errorf("ca: no instructions for platform %q", p)
	}
	w("  check:   the SHA-256 fingerprint shown must be %s", in.Fingerprint)
	return b.String(), nil
}
