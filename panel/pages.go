package panel

import "github.com/gofiber/fiber/v2"

// pageRoutes mounts the HTML pages. (Being written.)
func (s *Server) pageRoutes(app *fiber.App) {}

// errorPage renders an error for a browser.
func (s *Server) errorPage(c *fiber.Ctx, code int, msg string) error {
	return c.Status(code).SendString(msg)
}
