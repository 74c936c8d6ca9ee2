package gitd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// repoStore creates and finds the bare repositories of projects. The SSH
// server and the HTTP handler share it, so a first push makes the same
// repository and hook whichever way it arrives.
type repoStore struct {
	dir         string // ReposDir
	git         string // absolute path of the git executable
	hookCommand string // HookCommand
	maxPush     int64  // receive.maxInputSize
}

// newRepoStore checks the settings both transports need to run git and its
// hook, finds git and creates reposDir if it is missing.
func newRepoStore(reposDir, hookCommand, hookSocket string, maxPush int64) (repoStore, error) {
	switch {
	case reposDir == "":
		return repoStore{}, errors.New("ReposDir is required")
	case !filepath.IsAbs(hookCommand):
		return repoStore{}, fmt.Errorf("HookCommand %q is not an absolute path", hookCommand)
	case hookSocket == "":
		return repoStore{}, errors.New("HookSocket is required")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return repoStore{}, fmt.Errorf("find git: %w", err)
	}
	if err := os.MkdirAll(reposDir, 0o700); err != nil {
		return repoStore{}, fmt.Errorf("create repos dir: %w", err)
	}
	if maxPush <= 0 {
		maxPush = DefaultMaxPushBytes
	}
	return repoStore{dir: reposDir, git: git, hookCommand: hookCommand, maxPush: maxPush}, nil
}

// repoDir is where a project's bare repository lives. name has passed
// schema.ValidateProjectName, so the result is directly under ReposDir.
func (s repoStore) repoDir(name string) string {
	return filepath.Join(s.dir, name+".git")
}

func repoExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "HEAD"))
	return err == nil
}

// hookScript is the post-receive hook of every repository.
func hookScript(command string) []byte {
	return []byte("#!/bin/sh\nexec " + shellQuote(command) + " hook post-receive\n")
}

// shellQuote quotes s as one word for /bin/sh: inside single quotes
// nothing is special except the quote itself, which is closed, escaped
// with a backslash and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ensureRepo creates the bare repository of a project if it is missing and
// makes sure its post-receive hook runs HookCommand. A new repository is
// built under a temporary name and renamed into place, so a crash or a
// concurrent first push never leaves a half-made repository under the real
// name.
func (s repoStore) ensureRepo(name string) (string, error) {
	dir := s.repoDir(name)
	if !repoExists(dir) {
		if err := s.initRepo(dir); err != nil {
			return "", err
		}
	}
	if err := writeHook(dir, hookScript(s.hookCommand)); err != nil {
		return "", err
	}
	if err := s.configureRepo(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// repoSettings are the git settings of every repository, each checked on
// every push (a repository made before a setting existed gets it):
//   - core.logAllRefUpdates=always makes git record every move of every
//     ref, in bare repositories too (where it is off by default): a
//     force-push, or a failed build's branch put back, then loses no
//     history from the server's copy, and `git reflog` shows where a branch
//     was;
//   - receive.maxInputSize refuses a push whose pack is larger than the
//     store's maxPush, before it is stored: one push cannot fill the disk.
func (s repoStore) repoSettings() []struct{ key, value string } {
	return []struct{ key, value string }{
		{"core.logAllRefUpdates", "always"},
		{"receive.maxInputSize", strconv.FormatInt(s.maxPush, 10)},
	}
}

// DefaultMaxPushBytes bounds the pack of one push when the Config does not.
const DefaultMaxPushBytes = 1 << 30

// configureRepo applies repoSettings to a repository that lacks them.
func (s repoStore) configureRepo(dir string) error {
	cfg, _ := os.ReadFile(filepath.Join(dir, "config"))
	lower := strings.ToLower(string(cfg))
	for _, set := range s.repoSettings() {
		_, name, _ := strings.Cut(strings.ToLower(set.key), ".")
		if strings.Contains(lower, name+" = "+strings.ToLower(set.value)+"\n") {
			continue
		}
		cmd := exec.Command(s.git, "--git-dir", dir, "config", set.key, set.value)
		cmd.Env = gitEnv(s.dir, "")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("set %s in %s: %w: %s", set.key, dir, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func (s repoStore) initRepo(dir string) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	tmp := filepath.Join(s.dir, ".tmp-"+hex.EncodeToString(b))
	defer os.RemoveAll(tmp) // a no-op once renamed
	cmd := exec.Command(s.git, "-c", "init.defaultBranch=main", "init", "--quiet", "--bare", tmp)
	cmd.Env = gitEnv(s.dir, "")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git init %s: %w: %s", dir, err, bytes.TrimSpace(out.Bytes()))
	}
	if err := writeHook(tmp, hookScript(s.hookCommand)); err != nil {
		return err
	}
	if err := s.configureRepo(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Someone else's first push won the race: theirs is as good.
		if repoExists(dir) {
			return nil
		}
		return fmt.Errorf("move new repository into place: %w", err)
	}
	return nil
}

// writeHook installs the post-receive hook unless it is already right, by
// writing a temporary file and renaming it over the old one so git never
// runs a half-written hook.
func writeHook(repo string, script []byte) error {
	path := filepath.Join(repo, "hooks", "post-receive")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, script) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o755 {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create hooks dir: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".post-receive-*")
	if err != nil {
		return fmt.Errorf("write hook: %w", err)
	}
	_, werr := f.Write(script)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o755)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write hook: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("install hook: %w", err)
	}
	return nil
}
