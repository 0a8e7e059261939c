package labs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mitmlab/mitmlab/ca"
)

// chromiumVerdicts is what headless Chromium (156) says of each profile,
// with the lab PKI's root trusted in its NSS database: its net error code,
// or "" when it loads the page. Measured, and pinned by
// TestInteropChromiumProfiles.
var chromiumVerdicts = map[ca.Profile]string{
	ca.ProfileValid:         "",
	ca.ProfileExpired:       "net::ERR_CERT_DATE_INVALID",
	ca.ProfileNotYetValid:   "net::ERR_CERT_DATE_INVALID",
	ca.ProfileWrongHost:     "net::ERR_CERT_COMMON_NAME_INVALID",
	ca.ProfileSelfSigned:    "net::ERR_CERT_AUTHORITY_INVALID",
	ca.ProfileUntrustedRoot: "net::ERR_CERT_AUTHORITY_INVALID",
	// Chromium checks no CRL: revocation of a certificate from a locally
	// trusted root goes unnoticed (CRLSets cover only public CAs).
	ca.ProfileRevoked: "",
	// No AIA URL to fetch the missing intermediate from, and a fresh
	// profile has no intermediate cached.
	ca.ProfileIncompleteChain:         "net::ERR_CERT_AUTHORITY_INVALID",
	ca.ProfileNameConstraintViolation: "net::ERR_CERT_INVALID",
	// Chromium's 2048-bit minimum holds for publicly trusted roots only;
	// under a locally trusted root an RSA 1024 leaf loads.
	ca.ProfileWeakKey: "",
}

// firefoxVerdicts is what headless Firefox ESR (153) says of each
// profile, with the lab PKI's root trusted in its profile's NSS database:
// the error code its warning names, or "" when it loads the page.
// Measured, and pinned by TestInteropFirefoxProfiles.
var firefoxVerdicts = map[ca.Profile]string{
	ca.ProfileValid:                   "",
	ca.ProfileExpired:                 "SEC_ERROR_EXPIRED_CERTIFICATE",
	ca.ProfileNotYetValid:             "MOZILLA_PKIX_ERROR_NOT_YET_VALID_CERTIFICATE",
	ca.ProfileWrongHost:               "SSL_ERROR_BAD_CERT_DOMAIN",
	ca.ProfileSelfSigned:              "MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT",
	ca.ProfileUntrustedRoot:           "SEC_ERROR_UNKNOWN_ISSUER",
	ca.ProfileRevoked:                 "",
	ca.ProfileIncompleteChain:         "SEC_ERROR_UNKNOWN_ISSUER",
	ca.ProfileNameConstraintViolation: "SEC_ERROR_CERT_NOT_IN_NAME_SPACE",
	ca.ProfileWeakKey:                 "",
}

// Lab 6: the certificate-warning taxonomy, offline.
var _ = register(&Lab{
	Number: 6, Name: "cert-warnings", Title: "Certificate warnings: what a client refuses, and why",
	OwnBanks: true,
	Summary:  "the bank serves each bad certificate of the badssl.com catalogue; the victim's verdict and exact error for each",
	run: func(ctx context.Context, w *World) error {
		for _, p := range ca.Profiles() {
			chain, err := w.PKI.Issue(p.Name, []string{BankHost}, ca.IssueOptions{})
			if err != nil {
				return err
			}
			if err := w.startBankWith(chain, nil); err != nil {
				return err
			}
			visit := Visit{Base: w.Bank.URL("https"), Trust: w.PublicRoots(), NoLogin: true}
			browser, verdicts := browserVerdicts(w.Victim.Kind())
			if verdicts == nil {
				visit.CRLs = chain.CRLs // a careful client has fetched the issuer's CRL
			}
			w.Step("profile %s (%s): the victim (%s) opens %s", p.Name, p.Summary, w.Victim.Kind(), visit.Base)
			out, err := w.Victim.Do(ctx, visit, w.User, w.Secret)
			if err != nil {
				return err
			}
			if len(out.Screenshot) > 0 {
				name := "warning-" + string(p.Name) + ".png"
				if err := os.WriteFile(filepath.Join(w.Dir, name), out.Screenshot, 0o644); err == nil {
					w.Artifact(name)
				}
			}
			w.AddCert(string(p.Name)+": "+p.Summary, chain.Leaf(), chain.Certs[1:]...)
			switch {
			case verdicts != nil:
				want := verdicts[p.Name]
				got := out.Err
				if out.OK {
					got = ""
				}
				text := fmt.Sprintf("%s: %s says %s", p.Name, browser, orLoads(want))
				switch p.Name {
				case ca.ProfileRevoked:
					text = fmt.Sprintf("revoked: %s loads it anyway (it does not fetch this CRL; browsers rely on pushed revocation lists)", browser)
				case ca.ProfileWeakKey:
					text = fmt.Sprintf("weak-key: %s loads it (%s)", browser, weakKeyWhy[w.Victim.Kind()])
				}
				w.Expect("profile-"+string(p.Name), text, got == want, "%s", orLoads(got))
			case p.Name == ca.ProfileValid:
				w.Expect("profile-valid", "valid: the victim accepts the bank's certificate", out.OK, "%s", outcome(out))
			default:
				w.Expect("profile-"+string(p.Name), fmt.Sprintf("%s: the victim refuses (%s)", p.Name, p.Want),
					!out.OK && out.Reason == p.Want, "%s", firstLine(out.Err))
			}
		}
		if err := w.StopTraffic(nil, false); err != nil {
			return err
		}
		rep, err := w.Analyze("wire.pcapng", false)
		if err != nil {
			return err
		}
		w.Expect("no-password-sent", "the victim never logged in: the password is nowhere in the capture", secretVerdict(rep).Found == "none", "%s", secretVerdict(rep).Verdict)
		w.Note("Each warning is a different failure: a date (expired, not yet valid), a name (wrong host), a trust path " +
			"(self-signed, untrusted root, missing intermediate), a revocation, a CA issuing outside its name constraints, or a " +
			"key too weak. Go's verifier checks neither revocation nor key size; the lab's Go victim adds both, as browsers and " +
			"OpenSSL's default security level do. Clicking through any of these warnings gives up everything HTTPS protects.")
		return nil
	},
})

// browserVerdicts is the name and the measured verdict table of a browser
// victim; nil for the clients that are checked against ca.Profile.Want.
func browserVerdicts(k ClientKind) (string, map[ca.Profile]string) {
	switch k {
	case ClientChromium:
		return "Chromium", chromiumVerdicts
	case ClientFirefox:
		return "Firefox", firefoxVerdicts
	}
	return "", nil
}

// weakKeyWhy says why a browser loads the weak-key profile.
var weakKeyWhy = map[ClientKind]string{
	ClientChromium: "it demands 2048-bit RSA only of publicly trusted roots, and this root was added by hand",
	ClientFirefox:  "its verifier demands 2048-bit RSA only of EV certificates and accepts 1024 bits for the others",
}

func orLoads(code string) string {
	if code == "" {
		return "nothing: the page loads"
	}
	return code
}
