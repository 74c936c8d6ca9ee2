package panel

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
)

// addKeyRequest is the body of POST /api/keys.
type addKeyRequest struct {
	// PublicKey is one line of authorized_keys form: "ssh-ed25519 AAAA… comment".
	PublicKey string `json:"public_key"`
	// Name labels the key; empty: the key's comment.
	Name string `json:"name"`
}

func (s *Server) apiListKeys(c *fiber.Ctx) error {
	ks, err := s.svc.Keys(c.UserContext(), currentUser(c))
	return listJSON(c, ks, err, toKeyJSON)
}

func (s *Server) apiAddKey(c *fiber.Ctx) error {
	var req addKeyRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	k, err := deploy.ParseKey(req.PublicKey)
	if err != nil {
		return err
	}
	added, err := s.svc.AddKeys(c.UserContext(), currentUser(c), "", []deploy.PublicKey{k}, req.Name)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(toKeyJSON(added[0]))
}

func (s *Server) apiDeleteKey(c *fiber.Ctx) error {
	id, err := idParam(c, "id", "key")
	if err != nil {
		return err
	}
	if _, err := s.svc.RemoveKey(c.UserContext(), currentUser(c), strconv.FormatInt(id, 10)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
