package panel

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"minivercel/deploy"
	"minivercel/nodes"
	"minivercel/schema"
)

// NodeLister is what the panel reads of the server's nodes (*schema.Store).
// ListNodes returns every registered node by id, none being no error; Now is
// the database's clock, which the nodes' times were written by. Both are
// safe for concurrent use and end with ctx.
type NodeLister interface {
	ListNodes(ctx context.Context) ([]schema.Node, error)
	Now(ctx context.Context) (time.Time, error)
}

// nodeRow is a node with its state, both as measured by the database's
// clock.
type nodeRow struct {
	schema.Node
	// State is nodes.State's word: live, stale or stopped.
	State string
	// Seen says how long ago the node was last seen ("3s ago").
	Seen string
}

// nodeRows reads the nodes for the page and the API. Only administrators
// see them: addresses and versions are a map of the installation. A user
// who is not one gets the 403 the service gives other admin-only things.
func (s *Server) nodeRows(ctx context.Context, actor schema.User) ([]nodeRow, error) {
	if !actor.IsAdmin {
		return nil, &deploy.Error{Kind: deploy.ErrForbidden, Msg: "only an administrator can see the server's nodes"}
	}
	list, err := s.nodes.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	now, err := s.nodes.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	rows := make([]nodeRow, len(list))
	for i, n := range list {
		rows[i] = nodeRow{Node: n, State: nodes.State(n, now), Seen: nodes.Ago(n.LastSeen, now)}
	}
	return rows, nil
}

// nodesPage lists the nodes, to administrators.
func (s *Server) nodesPage(c *fiber.Ctx) error {
	rows, err := s.nodeRows(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "nodes", "Nodes", rows)
}

// apiListNodes answers GET /api/nodes, to administrators.
func (s *Server) apiListNodes(c *fiber.Ctx) error {
	rows, err := s.nodeRows(c.UserContext(), currentUser(c))
	return listJSON(c, rows, err, toNodeJSON)
}

// nodeJSON is a node in GET /api/nodes.
type nodeJSON struct {
	ID        string    `json:"id"`
	Roles     []string  `json:"roles"`
	Address   string    `json:"address"`
	Version   string    `json:"version"`
	State     string    `json:"state"`
	LastSeen  time.Time `json:"last_seen"`
	StartedAt time.Time `json:"started_at"`
}

func toNodeJSON(n nodeRow) nodeJSON {
	return nodeJSON{ID: n.ID, Roles: n.Roles, Address: n.Address, Version: n.Version, State: n.State,
		LastSeen: n.LastSeen.UTC(), StartedAt: n.StartedAt.UTC()}
}
