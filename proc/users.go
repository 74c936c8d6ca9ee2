package proc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildUserName is the system account builds run as when the server is
// root.
const BuildUserName = "minivercel-build"

// AppUserName is the system account server apps run as when the server is
// root. It is not the build user: a running app must not be able to write
// into builds in progress, nor a build into a running app.
const AppUserName = "minivercel-app"

// AppUsers names the system users of one server's apps: one per project, so
// that apps of different projects cannot read each other's files or
// /proc/<pid>/environ, and a prefix of the server's own, so that two servers
// on one machine (another data directory) never share an app user and
// neither kills the other's apps when it cleans up at start. A project's
// user is named by its id, which is never reused, not by its name: a
// project made again under a deleted one's name gets a user of its own.
// Names are "mva" + 8 hex characters of the server + "-" + the project id in
// decimal: at most 31 characters, within Linux's 32.
type AppUsers struct {
	prefix string
}

// NewAppUsers returns the app users of the server identified by serverID
// (its absolute data directory).
func NewAppUsers(serverID string) AppUsers {
	sum := sha256.Sum256([]byte("minivercel server\x00" + serverID))
	return AppUsers{prefix: "mva" + hex.EncodeToString(sum[:4]) + "-"}
}

// For returns (creating it when missing) the system user the server apps of
// the project with id projectID run as.
func (a AppUsers) For(projectID int64) (uid, gid uint32, err error) {
	if projectID <= 0 {
		return 0, 0, fmt.Errorf("app user of project id %d: not a project id", projectID)
	}
	return SystemUser(a.name(projectID))
}

func (a AppUsers) name(projectID int64) string {
	return a.prefix + strconv.FormatInt(projectID, 10)
}

// Remove ends every process of a deleted project's app user (its app, its
// previews, its functions and anything they started) and deletes the user
// and its group. A project that never had a user is no error; nor is a
// server that is not root, which has no app users.
func (a AppUsers) Remove(projectID int64) error {
	if os.Geteuid() != 0 {
		return nil
	}
	name := a.name(projectID)
	for _, u := range a.existing() {
		if u.name == name {
			return u.remove()
		}
	}
	return nil
}

// Prune removes, as Remove does, every app user of this server that belongs
// to no project keep lists: a project deleted by a run that crashed before
// it removed the user, or a user named the way older versions named them
// (by project name). It returns the names it removed.
func (a AppUsers) Prune(keep map[int64]bool) ([]string, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, u := range a.existing() {
		id, err := strconv.ParseInt(strings.TrimPrefix(u.name, a.prefix), 10, 64)
		if err == nil && a.name(id) == u.name && keep[id] {
			continue
		}
		if err := u.remove(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, u.name)
	}
	return removed, errors.Join(errs...)
}

// remove ends every process of the user and deletes it.
func (u passwdEntry) remove() error {
	// Killed until none is left: a process may fork while a pass runs.
	// userdel refuses a user with processes, zombies included, until their
	// parents reap them: it is tried again for a while.
	deadline := time.Now().Add(userdelPatience)
	for {
		for range 10 {
			if KillUIDs(u.uid) == 0 {
				break
			}
		}
		out, err := exec.Command("userdel", u.name).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("userdel %s: %v: %s", u.name, err, strings.TrimSpace(string(out)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// UIDs returns the uids of this server's app users that exist, for killing
// the processes an earlier run of this server left behind.
func (a AppUsers) UIDs() []uint32 {
	var uids []uint32
	for _, u := range a.existing() {
		uids = append(uids, u.uid)
	}
	return uids
}

// RemoveAll ends every process of this server's app users (a daemon an
// app detached survives the server's own stop) and deletes the users and
// their groups, for a server whose data directory is gone for good (a
// test's).
func (a AppUsers) RemoveAll() error {
	var errs []error
	for _, u := range a.existing() {
		errs = append(errs, u.remove())
	}
	return errors.Join(errs...)
}

type passwdEntry struct {
	name string
	uid  uint32
}

// existing lists this server's app users from /etc/passwd.
func (a AppUsers) existing() []passwdEntry {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return nil
	}
	var out []passwdEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || !strings.HasPrefix(f[0], a.prefix) {
			continue
		}
		if u, err := strconv.ParseUint(f[2], 10, 32); err == nil && u != 0 {
			out = append(out, passwdEntry{f[0], uint32(u)})
		}
	}
	return out
}

// systemUserMu serialises the look-up-or-create, so two workers starting at
// once do not both run useradd.
var systemUserMu sync.Mutex

// SystemUser returns the ids of the system account name, creating it with
// useradd when missing: a system account with no home (/nonexistent), the
// nologin shell and its own group. An account with uid or gid 0 is refused,
// since running anything "unprivileged" as root would be meaningless. When
// the server is not root it cannot switch users, so SystemUser returns the
// current uid and gid without looking name up.
func SystemUser(name string) (uid, gid uint32, err error) {
	if os.Geteuid() != 0 {
		return uint32(os.Getuid()), uint32(os.Getgid()), nil
	}
	systemUserMu.Lock()
	defer systemUserMu.Unlock()

	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		// --user-group: the account must not share a group with anyone,
		// or it could read files left group-readable for that group.
		cmd := exec.Command("/usr/sbin/useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
		out, addErr := cmd.CombinedOutput()
		// Another process may have created the user meanwhile (useradd exit
		// 9): the second look-up decides.
		u, err = user.Lookup(name)
		if err != nil && addErr != nil {
			return 0, 0, fmt.Errorf("create system user %s: %w: %s", name, addErr, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("look up system user %s: %w", name, err)
	}
	uid64, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid64, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("parse ids of system user %s: %w", name, err)
	}
	if uid64 == 0 || gid64 == 0 {
		return 0, 0, fmt.Errorf("system user %s has uid %d gid %d: refusing to use root", name, uid64, gid64)
	}
	return uint32(uid64), uint32(gid64), nil
}

// userdelPatience bounds how long Remove waits for a killed user's
// processes to be reaped.
const userdelPatience = 5 * time.Second

// KillUIDs sends SIGKILL to every live process (not a zombie) whose real
// uid is one of uids and returns how many it signalled. Root (uid 0) and the caller's own uid are
// never matched, whatever uids holds.
func KillUIDs(uids ...uint32) int {
	match := map[string]bool{}
	for _, u := range uids {
		if u != 0 && u != uint32(os.Getuid()) {
			match[strconv.FormatUint(uint64(u), 10)] = true
		}
	}
	if len(match) == 0 {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "State:" && f[1] == "Z" {
				break // dead already, waiting for its parent
			}
			if len(f) >= 2 && f[0] == "Uid:" && match[f[1]] {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
				break
			}
		}
	}
	return n
}
