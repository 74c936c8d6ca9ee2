package panel

import "github.com/gofiber/fiber/v2"

// apiRoutes mounts the JSON API. (Being written.)
func (s *Server) apiRoutes(r fiber.Router) {}
