package panel

import (
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/ssh"

	"minivercel/schema"
)

type keysView struct {
	Keys  []schema.SSHKey
	Key   string // the add form as typed, when it was refused
	Label string
	Error string
	Host  string
	Fresh string // fingerprint of the key just added, highlighted
}

func (s *Server) keysPage(c *fiber.Ctx) error {
	return s.renderKeys(c, fiber.StatusOK, keysView{Fresh: c.Query("added")})
}

func (s *Server) renderKeys(c *fiber.Ctx, code int, v keysView) error {
	keys, err := s.store.KeysOfUser(c.UserContext(), currentUser(c).ID)
	if err != nil {
		return err
	}
	v.Keys, v.Host = keys, requestHost(c)
	return s.render(c, code, "keys", "SSH keys", v)
}

// keysSubmit adds a public key for the signed-in user. The key is parsed here
// so the user sees what is wrong with it instead of a failed push later.
func (s *Server) keysSubmit(c *fiber.Ctx) error {
	raw := strings.TrimSpace(c.FormValue("public_key"))
	label := strings.TrimSpace(c.FormValue("label"))
	refuse := func(msg string) error {
		return s.renderKeys(c, fiber.StatusUnprocessableEntity, keysView{Key: raw, Label: label, Error: msg})
	}
	if raw == "" {
		return refuse("Paste a public key, such as the contents of ~/.ssh/id_ed25519.pub.")
	}
	if strings.Contains(raw, "PRIVATE KEY") {
		// Never echo a private key back into the page.
		raw = ""
		return refuse("That is a private key. Paste the public key (the .pub file) instead, and keep the private key secret.")
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(raw))
	if err != nil {
		return refuse("This is not an SSH public key. It should look like “ssh-ed25519 AAAA… you@laptop”.")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return refuse("Paste one key at a time.")
	}
	if label == "" {
		label = comment
	}
	if len(label) > 100 {
		return refuse("Keep the label under 100 characters.")
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		authorized += " " + comment
	}
	fp := ssh.FingerprintSHA256(pub)
	if _, err := s.store.AddKey(c.UserContext(), currentUser(c).ID, label, fp, authorized); err != nil {
		if errors.Is(err, schema.ErrConflict) {
			return refuse("This key is already registered (" + fp + "). A key can belong to one user only.")
		}
		return err
	}
	s.log.Info("ssh key added from panel", "user", currentUser(c).Name, "fingerprint", fp)
	return redirectWith(c, "/keys?added="+urlQueryEscape(fp), false, "Key added. You can push with it now.")
}

// keyDeleteSubmit removes one of the user's own keys; another user's key
// answers 404 like a missing one, so ids cannot be probed.
func (s *Server) keyDeleteSubmit(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return fiber.NewError(fiber.StatusNotFound, "There is no such key.")
	}
	k, err := s.store.KeyByID(c.UserContext(), id)
	if errors.Is(err, schema.ErrNotFound) || (err == nil && k.UserID != currentUser(c).ID) {
		return fiber.NewError(fiber.StatusNotFound, "There is no such key.")
	}
	if err != nil {
		return err
	}
	if _, err := s.store.RemoveKey(c.UserContext(), strconv.FormatInt(k.ID, 10)); err != nil && !errors.Is(err, schema.ErrNotFound) {
		return err
	}
	s.log.Info("ssh key removed from panel", "user", currentUser(c).Name, "fingerprint", k.Fingerprint)
	label := k.Name
	if label == "" {
		label = k.Fingerprint
	}
	return redirectWith(c, "/keys", false, "Key “"+label+"” removed.")
}
