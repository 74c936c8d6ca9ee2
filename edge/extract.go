package edge

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// Limits bounds what one artifact may expand to, so that a hostile build
// output (builds run user code) cannot fill the disk or stall the edge.
// The zero value uses the defaults documented on each field.
type Limits struct {
	// MaxTotalBytes caps the sum of regular file sizes. Zero: 1 GiB.
	MaxTotalBytes int64
	// MaxEntries caps the number of tar entries of any kind. Zero: 100,000.
	MaxEntries int
}

const (
	defaultMaxTotalBytes = 1 << 30
	defaultMaxEntries    = 100_000
	// headerAllowance is the decompressed bytes allowed per entry besides
	// file data (header block, padding, a long name), so that a stream of
	// giant PAX headers or padding cannot make the reader spin for ever.
	headerAllowance = 4096
)

func (l Limits) withDefaults() Limits {
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = defaultMaxTotalBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = defaultMaxEntries
	}
	return l
}

// Extract verifies and extracts a gzip-compressed tar artifact into dst with
// the default Limits. See Limits.Extract.
func Extract(archivePath, wantSHA256, dst string) error {
	return Limits{}.Extract(archivePath, wantSHA256, dst)
}

// EnsureExtracted makes dst hold the extracted artifact, extracting it only
// when dst does not exist yet, with the default Limits. See
// Limits.EnsureExtracted.
func EnsureExtracted(archivePath, wantSHA256, dst string) error {
	return Limits{}.EnsureExtracted(archivePath, wantSHA256, dst)
}

// Extract checks that the sha256 (hex) of the compressed bytes at archivePath
// equals wantSHA256 (ErrChecksumMismatch otherwise), then extracts the
// archive into a temporary directory next to dst and renames it to dst, so
// dst either does not exist or is complete. dst must not exist (the error
// then wraps fs.ErrExist). Unsafe entries fail with ErrUnsafeArchive, limit
// breaches with ErrArchiveTooLarge; on any failure nothing is left behind.
func (l Limits) Extract(archivePath, wantSHA256, dst string) error {
	l = l.withDefaults()
	dst = filepath.Clean(dst)
	f, err := os.Open(archivePath)
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	// The same descriptor is hashed and then extracted, so a file swapped
	// at the path between the two steps cannot slip past the check.
	if err := verifySHA256(f, wantSHA256); err != nil {
		return fmt.Errorf("verify artifact %s: %w", archivePath, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind artifact: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("extract artifact to %s: %w", dst, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat extraction target: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return fmt.Errorf("create extraction dir: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := untar(f, tmp, l); err != nil {
		return fmt.Errorf("extract artifact %s: %w", archivePath, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("chmod extraction dir: %w", err)
	}
	// rename(2) makes the finished tree appear at once; EEXIST/ENOTEMPTY
	// (both match fs.ErrExist) mean another extractor won the race.
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("publish extracted artifact: %w", err)
	}
	done = true
	return nil
}

// extractLocks serialises EnsureExtracted per destination. Striping keeps the
// memory fixed however many builds are ever extracted; two destinations that
// share a stripe merely wait for each other.
var extractLocks [64]sync.Mutex

func extractLock(dst string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(dst))
	return &extractLocks[h.Sum32()%uint32(len(extractLocks))]
}

// EnsureExtracted is the idempotent form of Extract for callers that share
// destinations: if dst already exists it is trusted to be complete (Extract
// only ever creates it by rename) and nothing is done. Concurrent callers in
// one process wait for each other; across processes the rename decides and
// the loser's copy is discarded. Parent directories of dst are created.
func (l Limits) EnsureExtracted(archivePath, wantSHA256, dst string) error {
	dst = filepath.Clean(dst)
	mu := extractLock(dst)
	mu.Lock()
	defer mu.Unlock()
	if ok, err := isDir(dst); err != nil || ok {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create deployments dir: %w", err)
	}
	err := l.Extract(archivePath, wantSHA256, dst)
	if errors.Is(err, fs.ErrExist) {
		if ok, derr := isDir(dst); derr == nil && ok {
			return nil
		}
	}
	return err
}

func isDir(p string) (bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("check %s: exists and is not a directory", p)
	}
	return true, nil
}

// decodeDigest parses a recorded sha256 hex digest.
func decodeDigest(want string) ([]byte, error) {
	sum, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(want)))
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("%w: recorded checksum %q is not a sha256 hex digest", ErrChecksumMismatch, want)
	}
	return sum, nil
}

func verifySHA256(r io.Reader, want string) error {
	wantSum, err := decodeDigest(want)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("hash artifact: %w", err)
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), wantSum) != 1 {
		return ErrChecksumMismatch
	}
	return nil
}

// capReader fails, rather than ending, once more than n bytes were read, so
// that an oversized stream is reported as such and not as a truncated tar.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, ErrArchiveTooLarge
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func unsafeEntry(name, why string) error {
	return fmt.Errorf("%w %q: %s", ErrUnsafeArchive, name, why)
}

// untar writes the archive into dir, which must be empty and private to the
// caller. Every write goes through an os.Root, so even a bug in the checks
// below cannot reach outside dir; the checks exist to refuse bad archives
// loudly and to keep symlinks inside the tree for whoever reads it later.
func untar(r io.Reader, dir string, l Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open extraction root: %w", err)
	}
	defer root.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("read gzip: %w", err)
	}
	defer zr.Close()
	stream := &capReader{r: zr, n: l.MaxTotalBytes + int64(l.MaxEntries)*headerAllowance}
	tr := tar.NewReader(stream)
	x := extractor{root: root, dirs: map[string]bool{}}
	var total int64
	for entries := 1; ; entries++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if entries > l.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrArchiveTooLarge, l.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // metadata only; archive/tar already applied it
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "." {
				continue
			}
			if err := x.mkdirs(name); err != nil {
				return err
			}
		case tar.TypeReg:
			if hdr.Size < 0 || hdr.Size > l.MaxTotalBytes-total {
				return fmt.Errorf("%w: files exceed %d bytes (at %q)", ErrArchiveTooLarge, l.MaxTotalBytes, hdr.Name)
			}
			total += hdr.Size
			if err := x.file(name, hdr, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := x.symlink(name, hdr.Linkname); err != nil {
				return err
			}
		case tar.TypeLink:
			// A hardlink can alias a file that another entry later
			// overwrites, and its target is easy to get wrong: refused.
			return unsafeEntry(hdr.Name, "hardlinks are not allowed")
		case tar.TypeChar, tar.TypeBlock:
			return unsafeEntry(hdr.Name, "device files are not allowed")
		case tar.TypeFifo:
			return unsafeEntry(hdr.Name, "fifos are not allowed")
		default:
			return unsafeEntry(hdr.Name, fmt.Sprintf("entry type %q is not allowed", hdr.Typeflag))
		}
	}
}

// entryName returns the cleaned, slash-separated local form of a tar name,
// "." for the root itself. Names are taken as relative to the root; anything
// absolute or climbing out of it is refused rather than rewritten, because a
// rewritten name would silently put a file where the build did not mean it.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", unsafeEntry(raw, "empty name")
	}
	if strings.ContainsAny(raw, "\x00\\") {
		return "", unsafeEntry(raw, "name contains NUL or backslash")
	}
	if strings.HasPrefix(raw, "/") {
		return "", unsafeEntry(raw, "absolute name")
	}
	clean := path.Clean(raw)
	if clean == "." {
		return clean, nil
	}
	if !filepath.IsLocal(clean) {
		return "", unsafeEntry(raw, "name leaves the archive root")
	}
	return clean, nil
}

type extractor struct {
	root *os.Root
	// dirs holds directories this extraction created or checked. Entries
	// never replace an existing path, so a directory stays a directory.
	dirs map[string]bool
}

// mkdirs makes name and its parents real directories, refusing to pass
// through a symlink: writing through a link the archive itself planted is
// the classic way out of the extraction root.
func (x *extractor) mkdirs(name string) error {
	if name == "." || x.dirs[name] {
		return nil
	}
	if err := x.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(name, 0o755); err != nil {
			return fmt.Errorf("create dir %q: %w", name, err)
		}
		// Mkdir's mode is filtered by the umask; the tree must not be.
		if err := x.root.Chmod(name, 0o755); err != nil {
			return fmt.Errorf("chmod dir %q: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("stat %q: %w", name, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafeEntry(name, "entry would be written through a symlink")
	case !fi.IsDir():
		return unsafeEntry(name, "a path component is not a directory")
	}
	x.dirs[name] = true
	return nil
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader) error {
	if err := x.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	// Only two modes exist in a deployment: the exec bit survives (a
	// server app may ship scripts), setuid/setgid/sticky and odd
	// permissions never do.
	mode := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	// O_EXCL refuses an existing path, including a symlink planted by an
	// earlier entry, so a duplicate can never write through a link.
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return unsafeEntry(hdr.Name, "duplicate entry")
	}
	if err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	if _, err := io.CopyN(f, r, hdr.Size); err != nil {
		f.Close()
		return fmt.Errorf("write %q: %w", name, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %q: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %q: %w", name, err)
	}
	// The archive's mtime (not the extraction time) keeps Last-Modified
	// identical on every edge node that extracts the same build.
	if !hdr.ModTime.IsZero() {
		if err := x.root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
			return fmt.Errorf("set times on %q: %w", name, err)
		}
	}
	return nil
}

// symlink creates name pointing at the cleaned form of target. Storing the
// cleaned text matters: the kernel resolves ".." physically, so "s/.."
// through a symlink s could climb elsewhere than the lexical check assumed.
// A cleaned relative target has only leading ".." elements; with all parents
// real directories (mkdirs) and the climb no deeper than the link's own
// directory, every resolution of every link stays inside the root.
func (x *extractor) symlink(name, target string) error {
	if target == "" || strings.ContainsAny(target, "\x00\\") {
		return unsafeEntry(name, "symlink target is empty or contains NUL or backslash")
	}
	if path.IsAbs(target) {
		return unsafeEntry(name, fmt.Sprintf("symlink target %q is absolute", target))
	}
	clean := path.Clean(target)
	resolved := path.Join(path.Dir(name), clean)
	if !filepath.IsLocal(resolved) {
		return unsafeEntry(name, fmt.Sprintf("symlink target %q leaves the archive root", target))
	}
	if err := x.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	if err := x.root.Symlink(clean, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return unsafeEntry(name, "duplicate entry")
		}
		return fmt.Errorf("create symlink %q: %w", name, err)
	}
	return nil
}
