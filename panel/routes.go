package panel

import (
	"net/url"

	"github.com/gofiber/fiber/v2"
)

// routes mounts everything: the JSON API under /api, the live-log websocket at
// /ws, and the pages.
func (s *Server) routes() {
	s.app.Use(securityHeaders)
	s.apiRoutes(s.app.Group("/api"))
	s.wsRoutes(s.app)
	s.pageRoutes(s.app)
}

// securityHeaders are set on every panel response.
func securityHeaders(c *fiber.Ctx) error {
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "same-origin")
	return c.Next()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
