package deploy

import (
	"bufio"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"minivercel/schema"
)

// PublicKey is an SSH public key that passed the key policy.
type PublicKey struct {
	// Line is the key in canonical authorized_keys form: "type base64",
	// no options, no comment.
	Line        string
	Fingerprint string // SHA256:…, as ssh-keygen -l prints it
	Comment     string
}

// MinRSABits refuses RSA keys that are factorable in practice.
const MinRSABits = 2048

// maxKeyLabel bounds a key's name.
const maxKeyLabel = 100

// ParseKey reads exactly one public key in authorized_keys form, as pasted
// into a form or sent to the API, and applies the key policy.
func ParseKey(text string) (PublicKey, error) {
	keys, err := ParseKeys(text)
	if err != nil {
		return PublicKey{}, err
	}
	if len(keys) > 1 {
		return PublicKey{}, invalid("public_key", "paste one key at a time")
	}
	return keys[0], nil
}

// ParseKeys reads public keys, one per line (blank lines and # comments
// skipped), as an authorized_keys file holds them. Any refused line fails
// the whole input, so a typo never half-applies. The policy: no private key,
// no authorized_keys options (they would suggest a restriction gitd does not
// apply), no DSA, no RSA below MinRSABits.
func ParseKeys(text string) ([]PublicKey, error) {
	if strings.Contains(text, "PRIVATE KEY") {
		return nil, invalid("public_key", "that is a private key: paste the public key (the .pub file) instead, and keep the private key secret")
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if sc.Err() != nil {
		return nil, invalid("public_key", "a line is longer than 64 KiB: that is not an SSH public key")
	}
	var keys []PublicKey
	for n, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err != nil {
			if len(lines) > 1 {
				err.Msg = "line " + strconv.Itoa(n+1) + ": " + err.Msg
			}
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, invalid("public_key", "paste a public key, such as the contents of ~/.ssh/id_ed25519.pub")
	}
	return keys, nil
}

func parseKeyLine(line string) (PublicKey, *Error) {
	// x/crypto/ssh no longer parses DSA keys at all; name the reason
	// rather than calling the key malformed.
	if slices.Contains(strings.Fields(line), "ssh-dss") {
		return PublicKey{}, invalid("public_key", "DSA keys are too weak: use ed25519")
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return PublicKey{}, invalid("public_key", "this is not an SSH public key: it should look like \"ssh-ed25519 AAAA… you@laptop\"")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return PublicKey{}, invalid("public_key", "paste one key at a time")
	}
	if len(options) > 0 {
		return PublicKey{}, invalid("public_key", "the key has authorized_keys options: paste the key alone")
	}
	if ck, ok := pub.(ssh.CryptoPublicKey); ok && pub.Type() == ssh.KeyAlgoRSA {
		if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < MinRSABits {
			return PublicKey{}, invalid("public_key", "RSA keys need at least %d bits: use ed25519", MinRSABits)
		}
	}
	return PublicKey{
		Line:        strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		Fingerprint: ssh.FingerprintSHA256(pub),
		Comment:     strings.TrimSpace(comment),
	}, nil
}

// validKeyLabel checks a key's name.
func validKeyLabel(label string) error {
	if utf8.RuneCountInString(label) > maxKeyLabel || strings.ContainsAny(label, "\x00\r\n") {
		return invalid("name", "the key's name must be one line of at most %d characters", maxKeyLabel)
	}
	return nil
}

// AddKeys registers public keys for a user: the actor's own, or (for an
// administrator) owner's, who is created when missing. label names every key;
// empty: each key's comment. A key registered already, to anyone, is
// ErrConflict: a key identifies one user.
func (s *Service) AddKeys(ctx context.Context, actor schema.User, owner string, keys []PublicKey, label string) ([]schema.SSHKey, error) {
	label = strings.TrimSpace(label)
	if err := validKeyLabel(label); err != nil {
		return nil, err
	}
	var out []schema.SSHKey
	// One transaction: a key that is refused leaves no other key, and no
	// user created for them, behind.
	err := s.store.InTx(ctx, func(tx pgx.Tx) error {
		in := s.withStore(s.store.WithTx(tx))
		u, err := in.keyOwner(ctx, actor, owner)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, k := range keys {
			name := label
			if name == "" && validKeyLabel(k.Comment) == nil {
				name = k.Comment
			}
			added, err := in.store.AddKey(ctx, u.ID, name, k.Fingerprint, k.Line)
			if errors.Is(err, schema.ErrConflict) {
				return conflict("key %s is already registered: a key can belong to one user only", k.Fingerprint)
			}
			if err != nil {
				return fmt.Errorf("add key %s: %w", k.Fingerprint, err)
			}
			out = append(out, added)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range out {
		s.log.Info("ssh key added", "user", k.UserName, "fingerprint", k.Fingerprint, "by", actor.Name)
	}
	return out, nil
}

// keyOwner is the user whose keys or tokens an actor manages: themselves by
// default; someone else only for an administrator.
func (s *Service) keyOwner(ctx context.Context, actor schema.User, owner string) (schema.User, error) {
	switch {
	case actor.ID == 0 && !isOperator(actor):
		return schema.User{}, refuse(ErrForbidden, "", "sign in first")
	case owner == "" && isOperator(actor):
		return s.ensureUser(ctx, AdminUser)
	case owner == "" || owner == actor.Name:
		return actor, nil
	case !actor.IsAdmin:
		return schema.User{}, refuse(ErrForbidden, "", "only an administrator can manage another user's keys and tokens")
	}
	return s.ensureUser(ctx, owner)
}

// Keys lists SSH keys: an actor's own, or every user's for the Operator.
func (s *Service) Keys(ctx context.Context, actor schema.User) ([]schema.SSHKey, error) {
	var ks []schema.SSHKey
	var err error
	switch {
	case isOperator(actor):
		ks, err = s.store.ListKeys(ctx)
	case actor.ID == 0:
		return nil, nil
	default:
		ks, err = s.store.KeysOfUser(ctx, actor.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return ks, nil
}

// RemoveKey removes a key by id or fingerprint. A user may remove their own
// keys; an administrator anyone's. Another user's key is "not found" to a
// non-administrator: its existence is not theirs to learn.
func (s *Service) RemoveKey(ctx context.Context, actor schema.User, idOrFingerprint string) (schema.SSHKey, error) {
	missing := notFound("no key with id or fingerprint %q", idOrFingerprint)
	var k schema.SSHKey
	var err error
	if id, perr := strconv.ParseInt(idOrFingerprint, 10, 64); perr == nil {
		k, err = s.store.KeyByID(ctx, id)
	} else {
		k, err = s.keyByFingerprint(ctx, idOrFingerprint)
	}
	if errors.Is(err, schema.ErrNotFound) || (err == nil && k.UserID != actor.ID && !actor.IsAdmin) {
		return k, missing
	}
	if err != nil {
		return k, fmt.Errorf("read key %s: %w", idOrFingerprint, err)
	}
	if _, err := s.store.RemoveKey(ctx, strconv.FormatInt(k.ID, 10)); errors.Is(err, schema.ErrNotFound) {
		return k, missing
	} else if err != nil {
		return k, fmt.Errorf("remove key %d: %w", k.ID, err)
	}
	s.log.Info("ssh key removed", "owner", k.UserName, "fingerprint", k.Fingerprint, "by", actor.Name)
	return k, nil
}

func (s *Service) keyByFingerprint(ctx context.Context, fp string) (schema.SSHKey, error) {
	ks, err := s.store.ListKeys(ctx)
	if err != nil {
		return schema.SSHKey{}, err
	}
	for _, k := range ks {
		if k.Fingerprint == fp {
			return k, nil
		}
	}
	return schema.SSHKey{}, schema.ErrNotFound
}

// UserByKeyFingerprint answers gitd: the user of the key an SSH client proved
// it holds; an unknown key wraps schema.ErrNotFound.
func (s *Service) UserByKeyFingerprint(ctx context.Context, fingerprint string) (int64, error) {
	u, err := s.store.UserByKeyFingerprint(ctx, fingerprint)
	if err != nil {
		return 0, err
	}
	return u.ID, nil
}
