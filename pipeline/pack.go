package pipeline

// Artifact format. A build artifact is one gzip-compressed tar file, written
// by Pack and extracted by package edge; both sides rely on this contract:
//
//   - Entry names are relative slash paths of the build output's contents:
//     "index.html", "assets/", "assets/app.js". No leading "/" or "./", no
//     "..", and the output directory itself has no entry. Nothing named
//     ".git" is packed, at any depth: a repository's history is not part of
//     a site (the checkout never has one, but a build or an installed
//     package may).
//   - Entry types are directory (mode 0755 whatever its mode on disk, so
//     the app's user can always traverse it; name ending in "/"), regular
//     file (mode 0644, or 0755 when any execute bit was set: a server app's
//     node_modules/.bin targets and scripts must stay executable) and
//     symlink (mode 0777) whose target is relative and resolves inside the
//     tree, following the tree's other symlinks (node_modules/.bin/x ->
//     ../x/cli.js is fine). Nothing else: no hard links, devices, FIFOs.
//   - Entries come in fs.WalkDir order (lexical, a directory before its
//     contents). Uid and gid are 0, user and group names empty, and every
//     mtime is the build's commit time (the Unix epoch from Pack), so the
//     same tree of the same commit always gives the same bytes, while a
//     file of another commit gets another Last-Modified and another
//     size-and-mtime ETag (Express's, nginx's) even when its size is the
//     same. The extractor chooses owners itself and keeps the mtimes.
//   - Headers are USTAR, or PAX when a name is too long for USTAR.
//   - The checksum recorded with a build is the hex sha256 of the .tar.gz
//     file's bytes, as returned by Pack.
//
// The extractor must still validate every name and symlink: an artifact is
// a file on disk and the check costs nothing.

import (
	"archive/tar"
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// packEpoch is the mtime of every entry Pack writes; see the format
// comment.
var packEpoch = time.Unix(0, 0)

// packLevel is gzip's fastest level. Artifacts only travel from the
// worker to the edge's disk, and a server app's node_modules makes them
// large: packing time is worth more than the bytes (see BenchmarkPack).
const packLevel = gzip.BestSpeed

// packBuffer batches the compressor's small writes into few syscalls.
const packBuffer = 256 << 10

// packEntry is one path of the output, collected before anything is
// written so that symlinks can be checked against the whole tree.
type packEntry struct {
	name   string // relative slash path
	mode   fs.FileMode
	target string // symlink target
	size   int64  // a regular file's size when walked
}

// Defaults of PackOptions' limits.
const (
	DefaultMaxOutputBytes   = 4 << 30
	DefaultMaxArtifactBytes = 2 << 30
)

// PackOptions are PackIn's choices. The zero value packs with the Unix
// epoch as every mtime and the default limits.
type PackOptions struct {
	// MTime is every entry's modification time: the commit's time.
	MTime time.Time
	// MaxOutputBytes bounds the sum of the output's file sizes, checked
	// from the walk before anything is read (a sparse file of terabytes
	// fails at once) and again as files are read (one may grow). Zero:
	// DefaultMaxOutputBytes.
	MaxOutputBytes int64
	// MaxArtifactBytes bounds the compressed artifact, checked as it is
	// written. Zero: DefaultMaxArtifactBytes.
	MaxArtifactBytes int64
}

// Pack writes the contents of srcDir as a tar.gz artifact (format above) to
// dstPath and returns the hex sha256 of the compressed bytes and their size.
// The archive is written to a temporary file in dstPath's directory, synced
// and renamed into place with mode 0644, so a reader never sees half an
// artifact. A symlink that is absolute or resolves outside srcDir, or a
// file that is neither regular, directory nor symlink, fails the whole
// pack with an error wrapping ErrUnsafePath that names the offending path.
//
// The build user wrote srcDir and Pack runs as root, so every read goes
// through os.Root: a path swapped for a symlink mid-walk still cannot reach
// a file outside srcDir.
func Pack(srcDir, dstPath string) (sha256Hex string, size int64, err error) {
	return PackIn(context.Background(), srcDir, ".", dstPath, PackOptions{})
}

// PackIn is Pack of the directory rel inside base, opened through base: no
// component of rel may be a symlink, so a build that swaps one of the
// workspace's directories for a link (it owns them) cannot make root pack
// anything outside base. base itself must be a directory the build user
// cannot rename (its parent belongs to root). Every entry gets opt.MTime
// (the commit's time; whole seconds, in UTC). An output or artifact over
// opt's limits wraps ErrTooLarge; when ctx ends, packing stops within one
// buffer's read and returns ctx's error. A failed pack leaves no file.
func PackIn(ctx context.Context, base, rel, dstPath string, opt PackOptions) (sha256Hex string, size int64, err error) {
	srcDir := filepath.Join(base, rel)
	if opt.MTime.IsZero() {
		opt.MTime = packEpoch
	}
	maxOutput := cmp.Or(opt.MaxOutputBytes, DefaultMaxOutputBytes)
	maxArtifact := cmp.Or(opt.MaxArtifactBytes, DefaultMaxArtifactBytes)
	baseRoot, err := os.OpenRoot(base)
	if err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	defer baseRoot.Close()
	// Walk down one component at a time, refusing symlinks: os.Root would
	// follow a link that stays inside base, and even that must not happen.
	root := baseRoot
	for _, part := range strings.Split(filepath.ToSlash(filepath.Clean(rel)), "/") {
		if part == "." || part == "" {
			continue
		}
		fi, err := root.Lstat(part)
		if err != nil {
			return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
		}
		if !fi.IsDir() {
			return "", 0, fmt.Errorf("pack %s: output is not a directory (a symlink?): %w", srcDir, ErrUnsafePath)
		}
		next, err := root.OpenRoot(part)
		if err != nil {
			return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
		}
		if root != baseRoot {
			root.Close()
		}
		root = next
	}
	if root != baseRoot {
		defer root.Close()
	}

	entries, err := collect(root)
	if err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	if total > maxOutput {
		return "", 0, fmt.Errorf("pack %s: the output's files add up to %s, over the limit of %s: %w",
			rel, humanBytes(total), humanBytes(maxOutput), ErrTooLarge)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dstPath), ".pack-*.tmp")
	if err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	hash := sha256.New()
	counter := &countWriter{max: maxArtifact}
	buf := bufio.NewWriterSize(io.MultiWriter(tmp, hash, counter), packBuffer)
	gz, err := gzip.NewWriterLevel(buf, packLevel)
	if err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	tw := tar.NewWriter(gz)
	w := &entryWriter{tw: tw, root: root, ctx: ctx, mtime: opt.MTime.UTC().Truncate(time.Second), left: maxOutput}
	for _, e := range entries {
		if err := w.write(e); err != nil {
			return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	if err := gz.Close(); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	if err := buf.Flush(); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("pack %s: sync: %w", srcDir, err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	if err := os.Rename(tmp.Name(), dstPath); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	// The rename is durable only once the directory is synced.
	if err := syncDir(filepath.Dir(dstPath)); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", srcDir, err)
	}
	return hex.EncodeToString(hash.Sum(nil)), counter.n, nil
}

// collect walks the tree without following symlinks and checks every
// symlink against the whole tree.
func collect(root *os.Root) ([]packEntry, error) {
	var entries []packEntry
	links := map[string]string{}
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if strings.EqualFold(path.Base(p), ".git") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		e := packEntry{name: p, mode: d.Type()}
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e.size = fi.Size()
		case d.Type()&fs.ModeSymlink != 0:
			t, err := root.Readlink(p)
			if err != nil {
				return err
			}
			e.target = t
			links[p] = t
		default:
			// Opening a FIFO would block the packer; devices and sockets
			// have no place in a website.
			return fmt.Errorf("%s is a special file (%v): %w", p, d.Type(), ErrUnsafePath)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	lookup := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
	for _, e := range entries {
		switch {
		case e.mode&fs.ModeSymlink == 0:
		case path.IsAbs(e.target):
			// The artifact is extracted elsewhere, where an absolute
			// target means something else, or something of the host's.
			return nil, fmt.Errorf("symlink %s -> %s: absolute targets are not allowed: %w", e.name, e.target, ErrUnsafePath)
		case !symlinkStaysInside(e.name, e.target, lookup):
			return nil, fmt.Errorf("symlink %s -> %s points outside the output or loops: %w", e.name, e.target, ErrUnsafePath)
		}
	}
	return entries, nil
}

// entryWriter writes entries into the archive, within a budget of file
// bytes, and stops when ctx ends.
type entryWriter struct {
	tw    *tar.Writer
	root  *os.Root
	ctx   context.Context
	mtime time.Time
	left  int64 // file bytes the output may still have
}

func (w *entryWriter) write(e packEntry) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	h := &tar.Header{Name: e.name, ModTime: w.mtime}
	switch {
	case e.mode.IsDir():
		h.Typeflag, h.Name, h.Mode = tar.TypeDir, e.name+"/", 0o755
		return w.tw.WriteHeader(h)
	case e.mode&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.target, 0o777
		return w.tw.WriteHeader(h)
	}
	f, fi, err := openRegular(w.root, e.name)
	if err != nil {
		return err
	}
	defer f.Close()
	// The file may have grown since the walk: the budget counts what is
	// read now.
	if w.left -= fi.Size(); w.left < 0 {
		return fmt.Errorf("%s grew past the output's limit: %w", e.name, ErrTooLarge)
	}
	h.Typeflag, h.Size, h.Mode = tar.TypeReg, fi.Size(), 0o644
	if fi.Mode().Perm()&0o111 != 0 {
		h.Mode = 0o755
	}
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	// Exactly the size in the header: a file still growing must not
	// corrupt the archive.
	if _, err := io.CopyN(w.tw, ctxReader{w.ctx, f}, fi.Size()); err != nil {
		return fmt.Errorf("read %s: %w", e.name, err)
	}
	return nil
}

// ctxReader ends a read loop once ctx ends: packing a large file stops
// when its build is canceled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// countWriter counts the artifact's bytes and refuses those past max.
type countWriter struct{ n, max int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n > w.max {
		return 0, fmt.Errorf("the artifact grew past the limit of %s: %w", humanBytes(w.max), ErrTooLarge)
	}
	return len(p), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openRegular opens name in root for reading, as a regular file only. The
// caller found a regular file there while walking the tree; if the path was
// swapped since, O_NOFOLLOW and O_NONBLOCK neither follow a new symlink nor
// hang opening a FIFO, and a device or FIFO is refused rather than read.
func openRegular(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s changed type since the walk: %w", name, ErrUnsafePath)
	}
	return f, fi, nil
}
