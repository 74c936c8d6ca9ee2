package nodes

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"minivercel/hosts"
)

// IDFile is the file in the data directory that keeps the node's id.
const IDFile = "node-id"

// hostPart is how much of the host name an id keeps: with "-" and six hex
// characters an id stays well inside a DNS label.
const hostPart = 40

// idPattern is a DNS label, the rule the nodes table's CHECK holds too.
var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateID reports whether id may name a node: a DNS label of lowercase
// letters, digits and inner dashes, so it reads safely in logs, tables and
// host names. The error wraps ErrInvalidID.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w %q: want lowercase letters, digits and inner dashes, at most 63", ErrInvalidID, id)
	}
	return nil
}

// ID returns the node's stable id, kept in <dataDir>/node-id (mode 0600).
// The first call makes it from the host name and six random hex characters
// ("web-1-3fa9c2"): the host name tells an operator which machine it is, the
// random part keeps two machines with one host name apart. Later calls read
// it back, so a restart is the same node. A file that holds no valid id is an
// error naming the file: an operator may have written it by hand.
func ID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, IDFile)
	id, err := readID(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	host, _ := os.Hostname() // no host name still makes a valid id
	suffix := make([]byte, 3)
	rand.Read(suffix)
	id = sanitiseHost(host) + "-" + hex.EncodeToString(suffix)
	if err := createOnce(path, id+"\n"); errors.Is(err, fs.ErrExist) {
		// Another process on this data directory was first: its id is
		// the node's.
		return readID(path)
	} else if err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

// readID reads and checks the id in path; a missing file wraps
// fs.ErrNotExist.
func readID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read node id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if err := ValidateID(id); err != nil {
		return "", fmt.Errorf("node id file %s is corrupt (delete it to make a new id): %w", path, err)
	}
	return id, nil
}

// createOnce writes content to path unless path exists (fs.ErrExist). The
// content goes to a temporary file that is then linked into place, so a
// process reading path never sees it half written, and of two processes
// starting at once only one id wins.
func createOnce(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(content)
	if err == nil {
		err = tmp.Chmod(0o600) // CreateTemp's mode already, stated here
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// sanitiseHost turns a host name into the start of an id (hosts.Slug: a
// piece of a DNS label, at most hostPart long); "node" when nothing is left.
func sanitiseHost(host string) string { return cmp.Or(hosts.Slug(host, hostPart), "node") }
