package deploy_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// WeakKeys returns a DSA and a 1024-bit RSA public key in authorized_keys
// form: keys the key policy refuses. x/crypto/ssh can no longer make a DSA
// key, so its wire form is written here (type, p, q, g, y).
func WeakKeys(t testing.TB) (dsaKey, rsaKey string) {
	t.Helper()
	var blob []byte
	for _, part := range []string{"ssh-dss", "\x00\xb1p", "\x00\xc3q", "\x02", "\x05"} {
		n := len(part)
		blob = append(blob, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		blob = append(blob, part...)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return "ssh-dss " + base64.StdEncoding.EncodeToString(blob) + " me@laptop",
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + " me@laptop"
}
