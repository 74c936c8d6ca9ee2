package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cleanUp removes what an earlier run of this server left on disk when it
// stopped without finishing its work (a crash, kill -9, a power cut):
//
//   - build workspaces, <WorkDir>/<build id>: that run's builds were failed
//     by failInterrupted, and none of this run has started yet;
//   - half-written artifacts, <ArtifactsDir>/<project>/.pack-*.tmp;
//   - build caches a build was saving, <CacheDir>/<project id>/<kind>/.build-*;
//   - half-made repositories, <ReposDir>/.tmp-* (gitd's), and half-written
//     hooks, <ReposDir>/<project>.git/hooks/.post-receive-*;
//   - artifacts and extracted builds of builds that no longer exist (a
//     project deleted during the crash) or that retention collected;
//   - app users (and their processes) of projects that no longer exist.
//
// Only what is older than this run is touched (before): the git front ends
// listen before the queue starts, and a push may be making a repository
// already. Each removal is logged, with the path.
func (q *Queue) cleanUp(ctx context.Context, before time.Time) error {
	kept, err := q.store.KeptBuildIDs(ctx)
	if err != nil {
		return fmt.Errorf("read kept builds: %w", err)
	}
	removed := 0
	remove := func(what, path string) {
		fi, err := os.Lstat(path)
		if err != nil || !fi.ModTime().Before(before) {
			return
		}
		if err := os.RemoveAll(path); err != nil {
			q.log.Warn("remove leftover of an earlier run", "what", what, "path", path, "err", err)
			return
		}
		removed++
		q.log.Info("removed leftover of an earlier run", "what", what, "path", path)
	}
	// buildID parses a name that is a build id; ok is false for any other.
	buildID := func(name string) (int64, bool) {
		id, err := strconv.ParseInt(name, 10, 64)
		return id, err == nil && id > 0 && strconv.FormatInt(id, 10) == name
	}
	for _, e := range readDir(q.cfg.WorkDir) {
		if _, ok := buildID(e.Name()); ok {
			remove("build workspace", filepath.Join(q.cfg.WorkDir, e.Name()))
		}
	}
	for _, p := range readDir(q.cfg.ArtifactsDir) {
		if !p.IsDir() {
			continue
		}
		dir := filepath.Join(q.cfg.ArtifactsDir, p.Name())
		for _, e := range readDir(dir) {
			name := e.Name()
			if strings.HasPrefix(name, ".pack-") && strings.HasSuffix(name, ".tmp") {
				remove("unfinished artifact", filepath.Join(dir, name))
			} else if id, ok := buildID(strings.TrimSuffix(name, ".tar.gz")); ok && strings.HasSuffix(name, ".tar.gz") && !kept[id] {
				remove("artifact of a deleted or collected build", filepath.Join(dir, name))
			}
		}
	}
	for _, p := range readDir(q.cfg.CacheDir) {
		for _, kind := range []string{modulesCache, frameworksCache} {
			dir := filepath.Join(q.cfg.CacheDir, p.Name(), kind)
			for _, e := range readDir(dir) {
				if strings.HasPrefix(e.Name(), ".build-") {
					remove("unfinished build cache", filepath.Join(dir, e.Name()))
				}
			}
		}
	}
	for _, e := range readDir(q.cfg.ReposDir) {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			remove("unfinished repository", filepath.Join(q.cfg.ReposDir, name))
		} else if strings.HasSuffix(name, ".git") && e.IsDir() {
			hooks := filepath.Join(q.cfg.ReposDir, name, "hooks")
			for _, h := range readDir(hooks) {
				if strings.HasPrefix(h.Name(), ".post-receive-") {
					remove("unfinished hook", filepath.Join(hooks, h.Name()))
				}
			}
		}
	}
	if q.cfg.DeploymentsDir != "" {
		for _, e := range readDir(q.cfg.DeploymentsDir) {
			if id, ok := buildID(strings.TrimSuffix(e.Name(), precompressedSuffix)); ok && !kept[id] {
				remove("extracted build of a deleted or collected build", filepath.Join(q.cfg.DeploymentsDir, e.Name()))
			}
		}
	}
	if q.cfg.AppUsers != nil {
		projects, err := q.store.ListProjects(ctx)
		if err != nil {
			return fmt.Errorf("list projects: %w", err)
		}
		keep := map[int64]bool{}
		for _, p := range projects {
			keep[p.ID] = true
		}
		users, err := q.cfg.AppUsers.Prune(keep)
		for _, u := range users {
			removed++
			q.log.Info("removed leftover of an earlier run", "what", "app user of a deleted project", "user", u)
		}
		if err != nil {
			q.log.Warn("remove app users of deleted projects", "err", err)
		}
	}
	if removed > 0 {
		q.log.Info("removed leftovers of an earlier run", "count", removed)
	}
	return nil
}

// readDir lists a directory; a missing or unreadable one lists nothing
// (the directories are the server's own, made at start).
func readDir(dir string) []os.DirEntry {
	if dir == "" {
		return nil
	}
	entries, _ := os.ReadDir(dir)
	return entries
}
