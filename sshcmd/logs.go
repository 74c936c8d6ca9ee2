package sshcmd

import (
	"context"
	"flag"
	"fmt"
	"time"

	"minivercel/internal/tabular"
	"minivercel/schema"
)

// logPage is how many lines one read of a log takes.
const logPage = 1000

// maxTailLines bounds --lines.
const maxTailLines = 10000

func (c *Commands) logsCmd(r *request, args []string) error {
	var follow bool
	var build string
	var lines int
	words, err := r.parse("logs PROJECT [-f] [--lines N] [--build N]", args, 1, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&follow, "f", false, "")
		fs.BoolVar(&follow, "follow", false, "")
		fs.StringVar(&build, "build", "", "")
		fs.IntVar(&lines, "lines", 100, "")
	})
	if err != nil {
		return err
	}
	if lines < 1 || lines > maxTailLines {
		return usage("--lines: want 1 to %d", maxTailLines)
	}
	if follow {
		release, err := c.startFollowing(r.user.ID)
		if err != nil {
			return err
		}
		defer release()
	}
	if build != "" {
		id, err := buildID(build)
		if err != nil {
			return err
		}
		return c.buildLog(r, words[0], id, follow)
	}
	return c.runtimeLog(r, words[0], lines, follow)
}

// The bounds of logs -f: per user, and on this node in all.
const (
	maxFollowsPerUser = 8
	maxFollows        = 128
)

// startFollowing counts a logs -f of user, or refuses it past the bounds.
func (c *Commands) startFollowing(user int64) (release func(), err error) {
	c.followMu.Lock()
	defer c.followMu.Unlock()
	if c.following[user] >= maxFollowsPerUser {
		return nil, fmt.Errorf("%w: you follow %d logs already; stop one first", ErrBusy, maxFollowsPerUser)
	}
	if c.followAll >= maxFollows {
		return nil, fmt.Errorf("%w: the server follows %d logs already; try again later", ErrBusy, maxFollows)
	}
	c.following[user]++
	c.followAll++
	return func() {
		c.followMu.Lock()
		defer c.followMu.Unlock()
		if c.following[user]--; c.following[user] == 0 {
			delete(c.following, user)
		}
		c.followAll--
	}, nil
}

// buildLog prints a build's log; following, it waits for the build's end
// and fails when the build did.
func (c *Commands) buildLog(r *request, project string, id int64, follow bool) error {
	b, err := c.svc.ProjectBuild(r.ctx, project, id)
	if err != nil {
		return err
	}
	if !follow {
		after := 0
		for {
			page, err := c.store.LogPage(r.ctx, b.ID, after, logPage)
			if err != nil {
				return fmt.Errorf("read log of build %d: %w", b.ID, err)
			}
			for _, l := range page {
				if err := r.logLine(int64(l.Seq), l.Line, &l.CreatedAt); err != nil {
					return nil // the client went away
				}
				after = l.Seq
			}
			if len(page) < logPage {
				return nil
			}
		}
	}
	events, err := c.logs.Follow(r.ctx, b.ID)
	if err != nil {
		return fmt.Errorf("follow log of build %d: %w", b.ID, err)
	}
	for ev := range events {
		if !ev.Done {
			if err := r.logLine(int64(ev.Seq), ev.Line, nil); err != nil {
				return nil
			}
			continue
		}
		if r.json {
			if err := r.writeJSON(logLineJSON{Status: ev.Status, Done: true}); err != nil {
				return nil
			}
		}
		if ev.Status != schema.BuildSucceeded {
			return fmt.Errorf("%w: build #%d %s", errBuildFailed, b.ID, ev.Status)
		}
		return nil
	}
	// The channel closed without Done: the client went away, or the
	// stream broke (the database was unreachable): then the build's state
	// decides, never a success it did not have.
	if r.ctx.Err() != nil {
		return nil
	}
	now, err := c.svc.ProjectBuild(context.WithoutCancel(r.ctx), b.ProjectName, b.ID)
	if err != nil {
		return fmt.Errorf("the log of build %d ended early: %w", b.ID, err)
	}
	switch {
	case now.Status == schema.BuildSucceeded:
		return nil
	case now.Status.Done():
		return fmt.Errorf("%w: build #%d %s", errBuildFailed, b.ID, now.Status)
	}
	return fmt.Errorf("the log of build %d ended early while it is %s: follow it again", b.ID, now.Status)
}

// runtimeLog prints the newest lines of the runtime log of the project's
// live deployment (deploy.Service.LogDeployment); following, it then polls
// for new lines every PollInterval until the client goes away, and moves on
// to the next deployment when another one goes live.
//
// Polling, not notifications: runtime lines are stored in batches by every
// edge node with no announcement, and a poll of an indexed range every half
// second per follower is cheap; the bounded interval keeps it so.
func (c *Commands) runtimeLog(r *request, project string, n int, follow bool) error {
	d, err := c.svc.LogDeployment(r.ctx, project)
	if err != nil {
		return err
	}
	last, err := c.store.LastRuntimeSeq(r.ctx, d.ID)
	if err != nil {
		return fmt.Errorf("read runtime log of deployment %d: %w", d.ID, err)
	}
	after := max(0, last-int64(n))
	if !r.json {
		fmt.Fprintf(r.stderr, "deployment %d (build #%d, %s)\n", d.ID, d.BuildID, d.Status)
	}
	if _, err := c.printRuntime(r, d.ID, &after, n); err != nil || !follow {
		return err
	}
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	quiet := 0
	for {
		select {
		case <-r.ctx.Done():
			return nil
		case <-t.C:
		}
		got, err := c.printRuntime(r, d.ID, &after, logPage)
		if err != nil {
			if r.ctx.Err() != nil {
				return nil // stopped while it read: a clean end
			}
			return err
		}
		if got {
			quiet = 0
			continue
		}
		// Every few quiet polls: has another deployment gone live?
		if quiet++; quiet%8 != 0 {
			continue
		}
		now, err := c.svc.LogDeployment(r.ctx, project)
		if err != nil {
			if r.ctx.Err() != nil {
				return nil
			}
			return err
		}
		if now.ID != d.ID && now.Status == schema.DeploymentActive {
			d, after = now, 0
			if !r.json {
				fmt.Fprintf(r.stderr, "deployment %d (build #%d) is live now\n", d.ID, d.BuildID)
			}
		}
	}
}

// printRuntime prints up to limit lines of a deployment's runtime log after
// *after and moves *after on. It reports whether it printed any; an error
// is the store's failure, or errGone.
func (c *Commands) printRuntime(r *request, deploymentID int64, after *int64, limit int) (bool, error) {
	lines, err := c.store.RuntimeLogs(r.ctx, deploymentID, *after, limit)
	if err != nil {
		return false, fmt.Errorf("read runtime log of deployment %d: %w", deploymentID, err)
	}
	for _, l := range lines {
		if r.logLine(l.Seq, l.Line, &l.CreatedAt) != nil {
			return false, errGone
		}
		*after = l.Seq
	}
	return len(lines) > 0, nil
}

// logLine prints one log line: with its time for people, or as JSON.
// An app's or a build's output is untrusted: for a terminal its control
// characters are shown escaped, never sent (an escape sequence could
// retitle the window, write the clipboard or rewrite earlier lines).
func (r *request) logLine(seq int64, line string, at *time.Time) error {
	if r.json {
		return r.writeJSON(logLineJSON{Seq: seq, Line: line, CreatedAt: at})
	}
	line = tabular.Safe(line)
	if at == nil {
		_, err := fmt.Fprintln(r.stdout, line)
		return err
	}
	_, err := fmt.Fprintf(r.stdout, "%s  %s\n", at.Local().Format("15:04:05"), line)
	return err
}
