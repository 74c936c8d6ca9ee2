package gitd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"minivercel/hooks"
	"minivercel/schema"
)

// extKeyFingerprint is the Permissions extension that carries the
// fingerprint of the key a public-key callback was called for.
const extKeyFingerprint = "minivercel-key-fingerprint"

// publicKeyHandler accepts every key: a rejection at this stage cannot carry
// a message, and an unknown key should be told how to get added. The
// session handler decides who the user is.
//
// Security (CVE-2024-45337, key confusion): the callback runs for keys the
// client merely offers, and gliderlabs/ssh remembers the last one in its
// context, which need not be the key that finally authenticated. So each
// call installs a fresh Permissions value holding this key's fingerprint.
// gliderlabs returns that value to x/crypto, which stores the Permissions of
// the key whose signature it verified in ServerConn.Permissions. The session
// reads the fingerprint from there (see verifiedFingerprint), never from the
// key gliderlabs reports.
func (s *Server) publicKeyHandler(ctx ssh.Context, key ssh.PublicKey) bool {
	ctx.SetValue(ssh.ContextKeyPermissions, &ssh.Permissions{Permissions: &gossh.Permissions{
		Extensions: map[string]string{extKeyFingerprint: gossh.FingerprintSHA256(key)},
	}})
	return true
}

var errKeyMismatch = errors.New("session key does not match the authenticated key")

// verifiedFingerprint returns the fingerprint of the key that authenticated
// the connection, taken from the Permissions x/crypto kept for it. It
// refuses when gliderlabs' idea of the session key differs: that is the
// key-confusion attack, or a bug, and either way nothing should run.
func verifiedFingerprint(perms *gossh.Permissions, sessionKey gossh.PublicKey) (string, error) {
	if perms == nil || perms.Extensions[extKeyFingerprint] == "" {
		return "", fmt.Errorf("%w: no fingerprint was recorded", errKeyMismatch)
	}
	fp := perms.Extensions[extKeyFingerprint]
	if sessionKey == nil || gossh.FingerprintSHA256(sessionKey) != fp {
		return "", errKeyMismatch
	}
	return fp, nil
}

// handleSession serves one SSH session: one git command, or one command of
// Config.Commands.
func (s *Server) handleSession(sess ssh.Session) {
	ctx := sess.Context()
	log := s.log.With("remote", sess.RemoteAddr().String())

	var perms *gossh.Permissions
	if conn, ok := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn); ok {
		perms = conn.Permissions
		// Per session, not per connection: the loop ends with the session.
		kctx, stop := context.WithCancel(ctx)
		defer stop()
		go keepAlive(kctx, conn, s.cfg.IdleTimeout/4)
	}
	fp, err := verifiedFingerprint(perms, sess.PublicKey())
	if err != nil {
		log.Warn("ssh session refused", "err", err)
		s.deny(sess, "error: your SSH key could not be verified; please reconnect")
		return
	}
	log = log.With("key", fp)

	userID, err := s.auth.UserByKeyFingerprint(ctx, fp)
	if errors.Is(err, schema.ErrNotFound) {
		log.Debug("ssh key refused", "reason", "unknown key")
		s.deny(sess, unknownKeyMessage(fp, sess.PublicKey()))
		return
	}
	if err != nil {
		log.Error("look up ssh key", "err", err)
		s.deny(sess, "error: internal error while checking your SSH key; please try again later")
		return
	}
	log = log.With("user_id", userID)

	svc, name, err := parseCommand(sess.RawCommand())
	if errors.Is(err, errNotGit) && s.cfg.Commands != nil {
		s.runCommand(sess, log, userID)
		return
	}
	if err != nil {
		log.Debug("ssh command refused", "command", sess.RawCommand(), "err", err)
		s.deny(sess, "error: "+err.Error())
		return
	}
	log = log.With("project", name, "service", string(svc))

	switch svc {
	case receivePack:
		s.receivePack(sess, log, name, userID)
	case uploadPack:
		s.uploadPack(sess, log, name)
	}
}

// runCommand serves a session whose command is not git's through
// Config.Commands. Its context ends when the connection does (the client
// went away, or the session maximum passed) or when the client sends a
// signal (OpenSSH's ~B break, or a signal request): a command following a
// log then stops. The idle timeout never cuts a quiet command short while
// the client answers the keep-alive requests handleSession sends.
func (s *Server) runCommand(sess ssh.Session, log *slog.Logger, userID int64) {
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	defer context.AfterFunc(s.commands, cancel)()
	// Signals are read until the session stops taking them: gliderlabs
	// sends each one holding the session's lock, which Exit needs too.
	signals := make(chan ssh.Signal, 1)
	sess.Signals(signals)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-signals:
				log.Debug("ssh command signalled", "signal", string(sig))
				cancel()
			case <-done:
				return
			}
		}
	}()
	// The command's name only: its arguments may hold a variable's value.
	name, _, _ := strings.Cut(strings.TrimSpace(sess.RawCommand()), " ")
	log.Debug("ssh command", "command", name)
	code := s.cfg.Commands.RunCommand(ctx, userID, sess.RawCommand(), sess, sess, sess.Stderr())
	sess.Signals(nil)
	close(done)
	_ = sess.Exit(code)
}

// unknownKeyMessage tells the owner of an unknown key what to do about it.
func unknownKeyMessage(fp string, key gossh.PublicKey) string {
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	return fmt.Sprintf("error: this SSH key (%s) is not authorized.\n"+
		"error: An administrator can add it with:\n"+
		"error:   minivercel admin key add --user USER '%s'", fp, line)
}

func (s *Server) refuseSubsystem(sess ssh.Session) {
	s.log.Debug("ssh subsystem refused", "subsystem", sess.Subsystem(), "remote", sess.RemoteAddr().String())
	s.deny(sess, "error: this server only speaks git; subsystems are not supported")
}

// deny ends a session with a message on stderr and exit status 1. A denial
// is the client's problem, not the server's.
func (s *Server) deny(sess ssh.Session, msg string) {
	_, _ = io.WriteString(sess.Stderr(), msg+"\n")
	_ = sess.Exit(1)
}

// gitProtocolRe matches the GIT_PROTOCOL values git sends ("version=2",
// colon-separated key=value pairs); anything else is not passed on.
var gitProtocolRe = regexp.MustCompile(`^[a-z0-9=:.-]{1,64}$`)

// gitEnv is the whole environment of a git command: nothing of our own
// environment leaks into it (secrets, GIT_DIR and the like). protocol is
// the client's GIT_PROTOCOL value; one that does not look like git's is
// dropped.
func gitEnv(home, protocol string, extra ...string) []string {
	env := []string{"PATH=" + gitPath, "HOME=" + home}
	if protocol != "" && gitProtocolRe.MatchString(protocol) {
		env = append(env, "GIT_PROTOCOL="+protocol)
	}
	return append(env, extra...)
}

// sessionGitEnv is gitEnv with the GIT_PROTOCOL the SSH client sent.
func (s *Server) sessionGitEnv(sess ssh.Session, extra ...string) []string {
	protocol := ""
	for _, kv := range sess.Environ() {
		if v, ok := strings.CutPrefix(kv, "GIT_PROTOCOL="); ok && gitProtocolRe.MatchString(v) {
			protocol = v
		}
	}
	return gitEnv(s.cfg.ReposDir, protocol, extra...)
}

func (s *Server) receivePack(sess ssh.Session, log *slog.Logger, name string, userID int64) {
	ctx := sess.Context()
	created, err := s.projects.EnsureProject(ctx, name, userID)
	if err != nil {
		log.Error("ensure project", "err", err)
		s.deny(sess, "error: internal error while preparing the project; please try again later")
		return
	}
	if created {
		log.Info("project created")
	}
	dir, err := s.repos.ensureRepo(name)
	if err != nil {
		log.Error("ensure repository", "err", err)
		s.deny(sess, "error: internal error while preparing the repository; please try again later")
		return
	}
	token, release := s.reg.Register(hooks.Push{Project: name, UserID: userID})
	defer release()
	env := s.sessionGitEnv(sess,
		hooks.EnvHookSocket+"="+s.cfg.HookSocket,
		hooks.EnvPushToken+"="+token,
	)
	// The refs are stored whatever the hook says; a failed build still makes
	// `git push` exit non-zero, through the SSH exit status.
	s.serveGit(sess, log, receivePack, dir, env, release)
}

func (s *Server) uploadPack(sess ssh.Session, log *slog.Logger, name string) {
	exists, err := s.projects.ProjectExists(sess.Context(), name)
	if err != nil {
		log.Error("check project", "err", err)
		s.deny(sess, "error: internal error while looking up the project; please try again later")
		return
	}
	dir := s.repos.repoDir(name)
	if !exists || !repoExists(dir) {
		log.Debug("fetch refused", "reason", "no such project")
		s.deny(sess, fmt.Sprintf("error: project %q does not exist; push to it first", name))
		return
	}
	s.serveGit(sess, log, uploadPack, dir, s.sessionGitEnv(sess), nil)
}

// serveGit runs "git <svc> <dir>" with the SSH channel as its stdin and
// stdout and the channel's stderr as its stderr, and reports its exit
// status to the client.
//
// hookExit, when not nil, returns the exit code of the post-receive hook run
// of this push; a git that succeeded still reports the hook's failure, so a
// failed build makes `git push` exit non-zero.
func (s *Server) serveGit(sess ssh.Session, log *slog.Logger, svc service, dir string, env []string, hookExit func() int) {
	code, err := runGit(sess.Context(), s.repos.git, log, gitRun{
		svc: svc, args: []string{dir}, dir: dir, env: env,
		stdin: sess, stdout: sess, stderr: sess.Stderr(),
	})
	if err != nil {
		s.deny(sess, "error: internal error while starting git")
		return
	}
	if code == 0 && hookExit != nil {
		if code = hookExit(); code != 0 {
			log.Info("build failed; telling the pusher", "hook_exit", code)
		}
	}
	_ = sess.Exit(code)
}
