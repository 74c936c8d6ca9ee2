package proc

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

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

// TestAppUsers: each project gets a user of its own, the same one on every
// call; another server's users are other users; UIDs finds this server's
// users and only them, so that one server cleaning up at start never kills
// another server's apps.
func TestAppUsers(t *testing.T) {
	testenv.NeedRoot(t, "creating system users")
	one, two := NewAppUsers("/srv/proc-test-one"), NewAppUsers("/srv/proc-test-two")
	a1, _, err := one.For("proc-test-a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := one.For("proc-test-a")
	if err != nil || a2 != a1 {
		t.Fatalf("second call: uid %d, %v; want %d", a2, err, a1)
	}
	b, _, err := one.For("proc-test-b")
	if err != nil || b == a1 {
		t.Fatalf("another project: uid %d, %v; want a uid other than %d", b, err, a1)
	}
	other, _, err := two.For("proc-test-a")
	if err != nil || other == a1 {
		t.Fatalf("the same project of another server: uid %d, %v; want a uid other than %d", other, err, a1)
	}
	if name := one.name("proc-test-a"); len(name) > 32 {
		t.Errorf("user name %q is longer than useradd allows", name)
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
	if err := two.RemoveAll(); err != nil {
		t.Fatal(err)
	}
}
