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
)

// BuildUserName is the system account builds run as when the server is
// root.
const BuildUserName = "minivercel-build"

// AppUserName is the system account server apps run as when the server is
// root. It is not the build user: a running app must not be able to write
// into builds in progress, nor a build into a running app.
const AppUserName = "minivercel-app"

// projectUserPrefix starts the name of each project's app user.
const projectUserPrefix = "mva-"

// ProjectAppUser returns (creating it when missing) the system user a
// project's server apps run as: one per project, so apps of different projects
// cannot read each other's files or /proc/<pid>/environ. The name is a hash of
// the project's (user names are limited to 32 characters).
func ProjectAppUser(project string) (uid, gid uint32, err error) {
	return SystemUser(projectAppUserName(project))
}

// projectAppUserName is the name of the system user of a project's apps.
func projectAppUserName(project string) string {
	sum := sha256.Sum256([]byte("minivercel app user\x00" + project))
	return projectUserPrefix + hex.EncodeToString(sum[:6])
}

// AppUIDs returns the uids of every app user on this machine (the shared one
// and the per-project ones), for killing processes left by an earlier run.
func AppUIDs() []uint32 {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return nil
	}
	var uids []uint32
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || (f[0] != AppUserName && !strings.HasPrefix(f[0], projectUserPrefix)) {
			continue
		}
		if u, err := strconv.ParseUint(f[2], 10, 32); err == nil && u != 0 {
			uids = append(uids, uint32(u))
		}
	}
	return uids
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
