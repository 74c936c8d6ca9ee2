package panel

import (
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"minivercel/schema"
)

type buildView struct {
	Build      schema.Build
	ProjectURL string
	URL        string // the build's own URL, once it can serve
	IsLive     bool   // production serves this build
	Lines      []schema.LogLine
	LastSeq    int
	Running    bool // queued or running: the page follows the log live
}

func (s *Server) buildByParam(c *fiber.Ctx) (schema.Build, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return schema.Build{}, fiber.NewError(fiber.StatusNotFound, "There is no such build.")
	}
	b, err := s.store.BuildByID(c.UserContext(), id)
	if errors.Is(err, schema.ErrNotFound) {
		return b, fiber.NewError(fiber.StatusNotFound, "There is no build #"+strconv.FormatInt(id, 10)+".")
	}
	return b, err
}

func (s *Server) buildPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	b, err := s.buildByParam(c)
	if err != nil {
		return err
	}
	// The lines stored so far are part of the page; the script asks the
	// websocket only for lines after the last of them.
	lines, err := s.store.LogLines(ctx, b.ID, 0)
	if err != nil {
		return err
	}
	v := buildView{Build: b, ProjectURL: s.projectURL(b.ProjectName), Lines: lines, Running: !b.Status.Done()}
	if n := len(lines); n > 0 {
		v.LastSeq = lines[n-1].Seq
	}
	if b.Status == schema.BuildSucceeded && b.ArtifactPath != "" && b.CollectedAt == nil { // a collected build's URL answers 410
		v.URL = s.buildURL(b)
	}
	live, err := s.store.ActiveBuild(ctx, b.ProjectID)
	if err != nil && !errors.Is(err, schema.ErrNotFound) {
		return err
	}
	v.IsLive = err == nil && live.ID == b.ID
	return s.render(c, fiber.StatusOK, "build", b.ProjectName+" · Build #"+strconv.FormatInt(b.ID, 10), v)
}

func (s *Server) cancelSubmit(c *fiber.Ctx) error {
	b, err := s.buildByParam(c)
	if err != nil {
		return err
	}
	back := "/builds/" + strconv.FormatInt(b.ID, 10)
	if _, err := s.svc.Cancel(c.UserContext(), currentUser(c), b.ID); err != nil {
		return refusedTo(c, back, err)
	}
	return redirectWith(c, back, false, "Build #"+strconv.FormatInt(b.ID, 10)+" is being canceled.")
}
