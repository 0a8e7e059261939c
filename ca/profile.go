package ca

import (
	"fmt"
	"strings"
)

// Profile names a kind of server certificate for the certificate-warning
// lab: one good one and the faults of the badssl.com catalogue, offline.
type Profile string

// The profiles.
const (
	ProfileValid                   Profile = "valid"
	ProfileExpired                 Profile = "expired"
	ProfileNotYetValid             Profile = "not-yet-valid"
	ProfileWrongHost               Profile = "wrong-host"
	ProfileSelfSigned              Profile = "self-signed"
	ProfileUntrustedRoot           Profile = "untrusted-root"
	ProfileRevoked                 Profile = "revoked"
	ProfileIncompleteChain         Profile = "incomplete-chain"
	ProfileNameConstraintViolation Profile = "name-constraint-violation"
	ProfileWeakKey                 Profile = "weak-key"
)

// ProfileInfo describes a profile: what is wrong and what a careful client
// (Check, with the PKI root trusted and the issuer's CRL at hand) concludes.
type ProfileInfo struct {
	Name    Profile
	Summary string
	// Want is the Reason Check gives for this profile's chain.
	Want Reason
}

var profiles = []ProfileInfo{
	{ProfileValid, "a correct chain from the lab's public PKI", ReasonOK},
	{ProfileExpired, "the leaf's validity ended yesterday", ReasonExpired},
	{ProfileNotYetValid, "the leaf's validity starts tomorrow", ReasonNotYetValid},
	{ProfileWrongHost, "the leaf names wrong-host.lab.test, not the host", ReasonHostnameMismatch},
	{ProfileSelfSigned, "the leaf signed itself; no CA vouches for it", ReasonSelfSigned},
	{ProfileUntrustedRoot, "issued by a root no client trusts", ReasonUntrustedRoot},
	{ProfileRevoked, "the issuer revoked the leaf and lists it in its CRL", ReasonRevoked},
	{ProfileIncompleteChain, "the server sends the leaf without its intermediate", ReasonIncompleteChain},
	{ProfileNameConstraintViolation, "issued by an intermediate whose name constraints exclude the host", ReasonNameConstraint},
	{ProfileWeakKey, "the leaf has a 1024-bit RSA key", ReasonWeakKey},
}

// Profiles lists every profile, the valid one first.
func Profiles() []ProfileInfo { return append([]ProfileInfo(nil), profiles...) }

// ParseProfile accepts a profile name.
func ParseProfile(s string) (Profile, error) {
	if info, ok := profileInfo(Profile(strings.ToLower(strings.TrimSpace(s)))); ok {
		return info.Name, nil
	}
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = string(p.Name)
	}
	return "", fmt.Errorf("ca: unknown profile %q: use one of %s", s, strings.Join(names, ", "))
}

func profileInfo(p Profile) (ProfileInfo, bool) {
	for _, info := range profiles {
		if info.Name == p {
			return info, true
		}
	}
	return ProfileInfo{}, false
}
