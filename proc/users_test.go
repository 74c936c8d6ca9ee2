package proc

import (
	"math"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"minivercel/internal/testenv"
)

func TestSystemUser(t *testing.T) {
	testenv.NeedRoot(t, "creating system users")
	// Concurrent first calls must agree and not fail on each other's useradd.
	type ids struct{ uid, gid uint32 }
	got := make([]ids, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i].uid, got[i].gid, errs[i] = SystemUser(AppUserName) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("SystemUser: %v", errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("SystemUser results differ: %+v vs %+v", got[i], got[0])
		}
	}
	u, err := user.Lookup(AppUserName)
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid != strconv.Itoa(int(got[0].uid)) || u.Gid != strconv.Itoa(int(got[0].gid)) || got[0].uid == 0 || got[0].gid == 0 {
		t.Fatalf("SystemUser = %+v, user %+v; want the same non-root ids", got[0], u)
	}
	build, _, err := SystemUser(BuildUserName)
	if err != nil || build == got[0].uid {
		t.Fatalf("build user uid %d, %v; want a different user than the app's %d", build, err, got[0].uid)
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(passwd), "\n") {
		if strings.HasPrefix(line, AppUserName+":") && !strings.HasSuffix(line, ":/nonexistent:/usr/sbin/nologin") {
			t.Errorf("passwd entry %q: want home /nonexistent and shell nologin", line)
		}
	}
	if _, _, err := SystemUser("root"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("SystemUser(root) err = %v, want a refusal", err)
	}
}

// TestAppUsers: each project gets a user of its own, by id, the same one
// on every call; another server's users are other users; UIDs finds this
// server's users and only them, so that one server cleaning up at start
// never kills another server's apps.
func TestAppUsers(t *testing.T) {
	testenv.NeedRoot(t, "creating system users")
	one, two := NewAppUsers("/srv/proc-test-one"), NewAppUsers("/srv/proc-test-two")
	t.Cleanup(func() { one.RemoveAll(); two.RemoveAll() })
	a1, _, err := one.For(1)
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := one.For(1)
	if err != nil || a2 != a1 {
		t.Fatalf("second call: uid %d, %v; want %d", a2, err, a1)
	}
	b, _, err := one.For(2)
	if err != nil || b == a1 {
		t.Fatalf("another project: uid %d, %v; want a uid other than %d", b, err, a1)
	}
	other, _, err := two.For(1)
	if err != nil || other == a1 {
		t.Fatalf("the same project id of another server: uid %d, %v; want a uid other than %d", other, err, a1)
	}
	if name := one.name(math.MaxInt64); len(name) > 32 {
		t.Errorf("user name %q is longer than useradd allows", name)
	}
	if _, _, err := one.For(0); err == nil {
		t.Error("For(0) made a user; want a refusal")
	}
	build, _, err := SystemUser(BuildUserName)
	if err != nil {
		t.Fatal(err)
	}
	uids := one.UIDs()
	for _, want := range []uint32{a1, b} {
		if !slices.Contains(uids, want) {
			t.Errorf("UIDs() = %v lacks %d", uids, want)
		}
	}
	if slices.Contains(uids, other) || slices.Contains(uids, build) || slices.Contains(uids, 0) {
		t.Errorf("UIDs() = %v holds another server's user %d, the build user %d or root", uids, other, build)
	}
	if err := one.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if uids := one.UIDs(); len(uids) != 0 {
		t.Errorf("after RemoveAll: %v", uids)
	}
	if uids := two.UIDs(); !slices.Contains(uids, other) {
		t.Errorf("RemoveAll of one server removed another's user: %v", uids)
	}
}

// startAs starts a long sleep as uid/gid, in a session of its own (as a
// daemonised child of an app would be), and returns a channel closed when
// it has exited.
func startAs(t *testing.T, uid, gid uint32) (pid int, exited <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd.Process.Pid, done
}

// waitExit fails the test unless exited closes within a deadline.
func waitExit(t *testing.T, what string, exited <-chan struct{}) {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s is still running", what)
	}
}

// TestKillOrphansSparesAnotherServer is issue 11's "a second minivercel
// serve with another data dir kills the first's apps", on real processes
// of real users: killing the orphans of one server (what the edge does at
// start with the server's UIDs) ends that server's app processes and none
// of another server's, though both run a project with the same id.
func TestKillOrphansSparesAnotherServer(t *testing.T) {
	testenv.NeedRoot(t, "creating system users")
	one, two := NewAppUsers("/srv/proc-test-orphans-one"), NewAppUsers("/srv/proc-test-orphans-two")
	t.Cleanup(func() { one.RemoveAll(); two.RemoveAll() })
	uid1, gid1, err := one.For(5)
	if err != nil {
		t.Fatal(err)
	}
	uid2, gid2, err := two.For(5)
	if err != nil {
		t.Fatal(err)
	}
	_, mine := startAs(t, uid1, gid1)
	_, theirs := startAs(t, uid2, gid2)
	if n := KillUIDs(one.UIDs()...); n != 1 {
		t.Errorf("KillUIDs killed %d processes, want 1", n)
	}
	waitExit(t, "the first server's app", mine)
	select {
	case <-theirs:
		t.Fatal("killing one server's orphans ended another server's app")
	default:
	}
}

// TestRemoveEndsEveryProcessOfTheProjectAndItsUser: deleting a project
// ends every process of its app user, a daemonised one included, and
// deletes the user; another project's processes run on, and a new project
// (a new id) never gets the deleted one's user.
func TestRemoveEndsEveryProcessOfTheProjectAndItsUser(t *testing.T) {
	testenv.NeedRoot(t, "creating system users")
	users := NewAppUsers("/srv/proc-test-remove")
	t.Cleanup(func() { users.RemoveAll() })
	uid, gid, err := users.For(8)
	if err != nil {
		t.Fatal(err)
	}
	otherUID, otherGID, err := users.For(9)
	if err != nil {
		t.Fatal(err)
	}
	_, app := startAs(t, uid, gid)
	_, daemon := startAs(t, uid, gid)
	_, other := startAs(t, otherUID, otherGID)
	if err := users.Remove(8); err != nil {
		t.Fatal(err)
	}
	waitExit(t, "the deleted project's app", app)
	waitExit(t, "the deleted project's daemonised process", daemon)
	select {
	case <-other:
		t.Fatal("removing one project's user ended another project's app")
	default:
	}
	if _, err := user.Lookup(users.name(8)); err == nil {
		t.Errorf("user %s still exists", users.name(8))
	}
	if uids := users.UIDs(); slices.Contains(uids, uid) || !slices.Contains(uids, otherUID) {
		t.Errorf("UIDs() after Remove(8) = %v; want %d gone and %d kept", uids, uid, otherUID)
	}
	if err := users.Remove(8); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestPruneRemovesUsersOfGoneProjects: at start, the users of projects
// that no longer exist (deleted by a run that crashed before removing the
// user), and users named as older versions named them, go with their
// processes; the users of existing projects, and another server's, stay.
func TestPruneRemovesUsersOfGoneProjects(t *testing.T) {
	testenv.NeedRoot(t, "creating system users")
	users, other := NewAppUsers("/srv/proc-test-prune"), NewAppUsers("/srv/proc-test-prune-other")
	t.Cleanup(func() { users.RemoveAll(); other.RemoveAll() })
	kept, _, err := users.For(3)
	if err != nil {
		t.Fatal(err)
	}
	goneUID, goneGID, err := users.For(4)
	if err != nil {
		t.Fatal(err)
	}
	legacy := users.prefix + "0123456789ab" // a user named by project name's hash
	if _, _, err := SystemUser(legacy); err != nil {
		t.Fatal(err)
	}
	theirs, _, err := other.For(4)
	if err != nil {
		t.Fatal(err)
	}
	_, exited := startAs(t, goneUID, goneGID)
	removed, err := users.Prune(map[int64]bool{3: true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{legacy, users.name(4)}; !slices.Equal(removed, want) {
		t.Errorf("Prune removed %v, want %v", removed, want)
	}
	waitExit(t, "the gone project's app", exited)
	if uids := users.UIDs(); !slices.Equal(uids, []uint32{kept}) {
		t.Errorf("UIDs() after Prune = %v, want only %d", uids, kept)
	}
	if uids := other.UIDs(); !slices.Contains(uids, theirs) {
		t.Errorf("Prune of one server removed another's user: %v", uids)
	}
}
