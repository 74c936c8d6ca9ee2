package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SSHKey is a fresh ed25519 key for a test.
type SSHKey struct {
	Signer ssh.Signer
	// Authorized is the public key in authorized_keys form, with the comment.
	Authorized string
	// Fingerprint is "SHA256:…", as ssh-keygen -l prints it.
	Fingerprint string
}

// NewSSHKey makes a fresh ed25519 key whose authorized_keys line ends in
// comment.
func NewSSHKey(t testing.TB, comment string) SSHKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := signer.PublicKey()
	return SSHKey{
		Signer:      signer,
		Authorized:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment,
		Fingerprint: ssh.FingerprintSHA256(pub),
	}
}
