package panel

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
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
	keys, err := s.svc.Keys(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	v.Keys, v.Host = keys, requestHost(c)
	return s.render(c, code, "keys", "SSH keys", v)
}

// keysSubmit adds a public key for the signed-in user. The key is checked
// here, by the service's key policy, so the user sees what is wrong with it
// instead of a failed push later.
func (s *Server) keysSubmit(c *fiber.Ctx) error {
	raw := strings.TrimSpace(c.FormValue("public_key"))
	label := strings.TrimSpace(c.FormValue("label"))
	k, err := deploy.ParseKey(raw)
	var added []schema.SSHKey
	if err == nil {
		added, err = s.svc.AddKeys(c.UserContext(), currentUser(c), "", []deploy.PublicKey{k}, label)
	}
	if e := deploy.AsError(err); e != nil {
		if strings.Contains(raw, "PRIVATE KEY") {
			raw = "" // never echo a private key back into the page
		}
		return s.renderKeys(c, fiber.StatusUnprocessableEntity, keysView{Key: raw, Label: label, Error: sentence(e.Msg)})
	}
	if err != nil {
		return err
	}
	fp := added[0].Fingerprint
	return redirectWith(c, "/keys?added="+urlQueryEscape(fp), false, "Key added. You can push with it now.")
}

// keyDeleteSubmit removes one of the user's own keys; another user's key
// answers like a missing one, so ids cannot be probed.
func (s *Server) keyDeleteSubmit(c *fiber.Ctx) error {
	k, err := s.svc.RemoveKey(c.UserContext(), currentUser(c), c.Params("id"))
	if err != nil {
		return refusedTo(c, "/keys", err)
	}
	label := k.Name
	if label == "" {
		label = k.Fingerprint
	}
	return redirectWith(c, "/keys", false, "Key “"+label+"” removed.")
}
