package panel

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/ssh"

	"minivercel/schema"
)

// addKeyRequest is the body of POST /api/keys.
type addKeyRequest struct {
	// PublicKey is one line of authorized_keys form: "ssh-ed25519 AAAA… comment".
	PublicKey string `json:"public_key"`
	// Name labels the key; empty: the key's comment.
	Name string `json:"name"`
}

// minRSABits refuses RSA keys that are factorable in practice.
const minRSABits = 2048

// parsePublicKey reads one authorized_keys line. It returns the key in
// canonical form ("type base64", no options, no comment) with its comment.
func parsePublicKey(text string) (ssh.PublicKey, string, error) {
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(text)))
	if err != nil {
		return nil, "", errors.New("public_key is not an SSH public key (paste one line of ~/.ssh/id_ed25519.pub)")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, "", errors.New("public_key holds more than one key: add one at a time")
	}
	// Options such as command="..." or from="..." mean nothing to gitd, and
	// storing them would suggest they restrict the key.
	if len(options) > 0 {
		return nil, "", errors.New("public_key has authorized_keys options: paste the key alone")
	}
	switch pub.Type() {
	case ssh.KeyAlgoDSA:
		return nil, "", errors.New("DSA keys are too weak: use ed25519")
	case ssh.KeyAlgoRSA:
		if ck, ok := pub.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
				return nil, "", fmt.Errorf("RSA keys need at least %d bits: use ed25519", minRSABits)
			}
		}
	}
	return pub, comment, nil
}

func (s *Server) apiListKeys(c *fiber.Ctx) error {
	ks, err := s.store.KeysOfUser(c.UserContext(), currentUser(c).ID)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	out := make([]keyJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, toKeyJSON(k))
	}
	return c.JSON(out)
}

func (s *Server) apiAddKey(c *fiber.Ctx) error {
	var req addKeyRequest
	if err := decodeBody(c, &req, false); err != nil {
		return bodyError(c, err)
	}
	pub, comment, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return sendFieldError(c, &fieldError{"public_key", err.Error()})
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = strings.TrimSpace(comment)
	}
	if utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\x00\r\n") {
		return sendFieldError(c, &fieldError{"name", "name must be one line of at most 100 characters"})
	}
	u := currentUser(c)
	canonical := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	k, err := s.store.AddKey(c.UserContext(), u.ID, name, ssh.FingerprintSHA256(pub), canonical)
	if errors.Is(err, schema.ErrConflict) {
		return fiber.NewError(fiber.StatusConflict, "this key is already registered")
	}
	if err != nil {
		return fmt.Errorf("add key: %w", err)
	}
	s.log.Info("ssh key added", "user", u.Name, "fingerprint", k.Fingerprint)
	return c.Status(fiber.StatusCreated).JSON(toKeyJSON(k))
}

func (s *Server) apiDeleteKey(c *fiber.Ctx) error {
	id, err := idParam(c, "id", "key")
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	u := currentUser(c)
	k, err := s.store.KeyByID(ctx, id)
	// Another user's key is "not found" to a non-admin: its existence is not
	// theirs to learn.
	if errors.Is(err, schema.ErrNotFound) || (err == nil && k.UserID != u.ID && !u.IsAdmin) {
		return notFound("key")
	}
	if err != nil {
		return fmt.Errorf("read key %d: %w", id, err)
	}
	if _, err := s.store.RemoveKey(ctx, strconv.FormatInt(k.ID, 10)); err != nil {
		return lookupErr(err, "key")
	}
	s.log.Info("ssh key removed", "user", u.Name, "owner", k.UserName, "fingerprint", k.Fingerprint)
	return c.SendStatus(fiber.StatusNoContent)
}
