package panel

import (
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// wsRoutes mounts the live-log websocket. (Being written.)
func (s *Server) wsRoutes(app *fiber.App) {
	_ = websocket.New
}
