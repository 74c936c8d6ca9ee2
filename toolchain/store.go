// Package toolchain fetches Node and package managers (pnpm, yarn, bun) from
// the npm registry the machine is configured with, verifies them against the
// registry's integrity hashes, and keeps each version unpacked once under one
// directory shared by every project, every build and the apps at run time.
package toolchain

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config configures a Store.
type Config struct {
	// Dir holds the unpacked versions, <Dir>/<package>/<version>. It is
	// created 0755: builds and apps run as unprivileged users and must read
	// and execute what is in it. Required.
	Dir string
	// Registry is the npm registry's base URL (see NPMConfig). Required.
	Registry string
	// CAFile holds PEM certificates trusted for the registry besides the
	// system's (npm's cafile, see NPMConfig). Zero: the system's only.
	CAFile string
	// SystemPATH is where the system's Node is looked up (SystemNode).
	// Zero: "/usr/local/bin:/usr/bin:/bin".
	SystemPATH string
	// MetadataTimeout bounds one request for a package's version list.
	// Zero: 30 s.
	MetadataTimeout time.Duration
	// DownloadTimeout bounds one tarball download. Zero: 10 minutes.
	DownloadTimeout time.Duration
	// MaxMetadataBytes bounds a package's version list. Zero: 64 MiB.
	MaxMetadataBytes int64
	// MaxTarballBytes bounds a compressed tarball. Zero: 512 MiB.
	MaxTarballBytes int64
	// MaxUnpackedBytes bounds a tarball's unpacked files. Zero: 2 GiB.
	MaxUnpackedBytes int64
}

// maxEntries bounds the files of one tarball (Node's has about 2,700).
const maxEntries = 100_000

// Store fetches and caches packages. Its methods are safe for concurrent
// use, also by several processes sharing Dir: one download per version,
// moved into place with one rename.
type Store struct {
	cfg    Config
	client *http.Client

	mu    sync.Mutex
	docs  map[string]cachedPackument
	locks map[string]*sync.Mutex

	systemMu sync.Mutex
	system   *Node
}

// New returns a Store, creating Dir.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("create toolchain store: no directory")
	}
	reg, err := normalizeRegistry(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("create toolchain store: %w", err)
	}
	cfg.Registry = reg
	if cfg.SystemPATH == "" {
		cfg.SystemPATH = "/usr/local/bin:/usr/bin:/bin"
	}
	if cfg.MetadataTimeout <= 0 {
		cfg.MetadataTimeout = 30 * time.Second
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = 10 * time.Minute
	}
	if cfg.MaxMetadataBytes <= 0 {
		cfg.MaxMetadataBytes = 64 << 20
	}
	if cfg.MaxTarballBytes <= 0 {
		cfg.MaxTarballBytes = 512 << 20
	}
	if cfg.MaxUnpackedBytes <= 0 {
		cfg.MaxUnpackedBytes = 2 << 30
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("create toolchain store: %w", err)
	}
	if err := mkdir0755(cfg.Dir); err != nil {
		return nil, fmt.Errorf("create toolchain store: %w", err)
	}
	removeStale(cfg.Dir, 2*cfg.DownloadTimeout)
	client, err := httpClient(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("create toolchain store: %w", err)
	}
	return &Store{
		cfg:    cfg,
		client: client,
		docs:   map[string]cachedPackument{},
		locks:  map[string]*sync.Mutex{},
	}, nil
}

// httpClient returns a client that trusts the system's certificates and
// those in caFile, when not empty.
func httpClient(caFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read npm's cafile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("npm's cafile %s holds no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: transport}, nil
}

// removeStale removes what fetches left behind when their process died:
// temporary directories older than age, which no live fetch can still be
// writing (a download is bounded by DownloadTimeout).
func removeStale(dir string, age time.Duration) {
	pkgs, _ := os.ReadDir(dir)
	for _, p := range pkgs {
		if !p.IsDir() {
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(dir, p.Name()))
		for _, e := range entries {
			info, err := e.Info()
			if err == nil && e.IsDir() && strings.HasPrefix(e.Name(), ".tmp-") && time.Since(info.ModTime()) > age {
				_ = os.RemoveAll(filepath.Join(dir, p.Name(), e.Name()))
			}
		}
	}
}

// Dir returns the directory the Store unpacks into, for sandboxes that must
// make it visible.
func (s *Store) Dir() string { return s.cfg.Dir }

// CAFile returns Config.CAFile: builds' Node-based tools that do not read
// npm's configuration (yarn 2+, bun) should trust it too.
func (s *Store) CAFile() string { return s.cfg.CAFile }

// mkdir0755 creates dir and its parents readable by everyone; the mode is
// set again in case a umask or an earlier run left it narrower.
func mkdir0755(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// entryDir is where one version of a package is unpacked: its files in
// "package", generated launchers in "bin".
func (s *Store) entryDir(name string, v Version) string {
	return filepath.Join(s.cfg.Dir, strings.Replace(name, "/", "+", 1), v.String())
}

// lockKey serialises fetches of one entry within this process; flock
// serialises them across processes sharing Dir.
func (s *Store) lockKey(key string) func() {
	s.mu.Lock()
	mu, ok := s.locks[key]
	if !ok {
		mu = &sync.Mutex{}
		s.locks[key] = mu
	}
	s.mu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// fileLock takes an exclusive flock on path, waiting until ctx ends.
func fileLock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ensure returns the directory of version v of package name, downloading
// and unpacking it unless it is there already; fetched reports a download.
// finish, when not nil, runs on the unpacked tree before it is moved into
// place (writing launchers), with the tree's final path. say, when not nil,
// is told before a download starts.
func (s *Store) ensure(ctx context.Context, name string, v Version, d dist, wantHash string, say func(string), finish func(tmp, final string) error) (dir string, fetched bool, err error) {
	final := s.entryDir(name, v)
	if _, err := os.Stat(final); err == nil {
		return final, false, checkDigests(final, wantHash)
	}
	defer s.lockKey(final)()
	parent := filepath.Dir(final)
	if err := mkdir0755(parent); err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	unlock, err := fileLock(ctx, final+".lock")
	if err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: lock: %w", name, v, err)
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return final, false, checkDigests(final, wantHash) // another process fetched it meanwhile
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+v.String()+"-")
	if err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	tgz := filepath.Join(tmp, "download.tgz")
	if say != nil {
		say(fmt.Sprintf("Fetching %s %s from the npm registry", name, v))
	}
	digests, err := s.download(ctx, d, wantHash, tgz)
	if err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	// The tarball's digests stay with the entry: a packageManager hash of a
	// later build is checked against them, not trusted because the version
	// is cached.
	if err := os.WriteFile(filepath.Join(tmp, digestsFile), []byte(digests), 0o644); err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	if err := s.unpack(tgz, filepath.Join(tmp, "package")); err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	if err := os.Remove(tgz); err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	if finish != nil {
		if err := finish(tmp, final); err != nil {
			return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", false, fmt.Errorf("fetch %s@%s: %w", name, v, err)
	}
	return final, true, nil
}

// digestsFile, in a store entry, lists the digests of the tarball it came
// from as packageManager fields write them, "sha512.<hex>" and
// "sha224.<hex>", one per line.
const digestsFile = ".digests"

// checkDigests checks wantHash ("" checks nothing) against the digests
// recorded in the entry dir. An entry without them (made before they were
// kept) cannot be checked and is refused for a hashed request.
func checkDigests(dir, wantHash string) error {
	if wantHash == "" {
		return nil
	}
	if _, err := parsePMHash(wantHash); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(dir, digestsFile))
	if err != nil {
		return fmt.Errorf("packageManager hash %s: the cached copy has no recorded digest (remove %s to fetch it again): %w", wantHash, dir, ErrIntegrity)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(line)), []byte(strings.ToLower(wantHash))) == 1 {
			return nil
		}
	}
	return fmt.Errorf("packageManager hash %s differs from the cached copy's: %w", wantHash, ErrIntegrity)
}

// download writes the tarball of d to dst and checks it against
// d.Integrity, and against wantHash ("sha512.<hex>", as packageManager
// fields write it) when not empty. Nothing is unpacked before both match.
// It returns the tarball's digests in the form of digestsFile.
func (s *Store) download(ctx context.Context, d dist, wantHash, dst string) (string, error) {
	sri, err := parseIntegrity(d.Integrity)
	if err != nil {
		return "", err
	}
	var extra *expectedHash
	if wantHash != "" {
		if extra, err = parsePMHash(wantHash); err != nil {
			return "", err
		}
	}
	sum512, sum224 := sha512.New(), sha256.New224()
	u := d.Tarball
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return "", fmt.Errorf("download: tarball URL %q: %w", u, ErrRegistry)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", u, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w: %v", u, ErrRegistry, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %w: %s", u, ErrRegistry, resp.Status)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", u, err)
	}
	defer f.Close()
	hashes := []io.Writer{f, sri.h, sum512, sum224}
	if extra != nil {
		hashes = append(hashes, extra.h)
	}
	n, err := io.Copy(io.MultiWriter(hashes...), io.LimitReader(resp.Body, s.cfg.MaxTarballBytes+1))
	if err != nil {
		return "", fmt.Errorf("download %s: %w: %v", u, ErrRegistry, err)
	}
	if n > s.cfg.MaxTarballBytes {
		return "", fmt.Errorf("download %s: over %d bytes: %w", u, s.cfg.MaxTarballBytes, ErrTooLarge)
	}
	if err := sri.check(); err != nil {
		return "", fmt.Errorf("download %s: %w", u, err)
	}
	if extra != nil {
		if err := extra.check(); err != nil {
			return "", fmt.Errorf("download %s: packageManager hash: %w", u, err)
		}
	}
	digests := "sha512." + hex.EncodeToString(sum512.Sum(nil)) + "\nsha224." + hex.EncodeToString(sum224.Sum(nil)) + "\n"
	return digests, f.Close()
}

// expectedHash is a hash being computed and the digest it must end with.
type expectedHash struct {
	alg  string
	h    hash.Hash
	want []byte
}

func (e *expectedHash) check() error {
	if subtle.ConstantTimeCompare(e.h.Sum(nil), e.want) != 1 {
		return fmt.Errorf("%s differs from the published one: %w", e.alg, ErrIntegrity)
	}
	return nil
}

// parseIntegrity reads a Subresource Integrity value ("sha512-<base64>",
// possibly several separated by spaces) and keeps the sha512 one: npm's
// older sha1 alone is too weak to rely on.
func parseIntegrity(sri string) (*expectedHash, error) {
	for _, tok := range strings.Fields(sri) {
		b64, ok := strings.CutPrefix(tok, "sha512-")
		if !ok {
			continue
		}
		b64, _, _ = strings.Cut(b64, "?")
		want, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(want) != sha512.Size {
			return nil, fmt.Errorf("integrity %q is not a sha512 digest: %w", sri, ErrIntegrity)
		}
		return &expectedHash{alg: "sha512", h: sha512.New(), want: want}, nil
	}
	return nil, fmt.Errorf("the registry gave no sha512 integrity (got %q): %w", sri, ErrIntegrity)
}

// parsePMHash reads the hash of a packageManager field: "sha512.<hex>" or
// "sha224.<hex>", the digest of the tarball.
func parsePMHash(s string) (*expectedHash, error) {
	alg, hexs, _ := strings.Cut(s, ".")
	want, err := hex.DecodeString(hexs)
	if err != nil {
		return nil, fmt.Errorf("hash %q: not hexadecimal: %w", s, ErrBadSpec)
	}
	switch {
	case alg == "sha512" && len(want) == sha512.Size:
		return &expectedHash{alg: alg, h: sha512.New(), want: want}, nil
	case alg == "sha224" && len(want) == sha256.Size224:
		return &expectedHash{alg: alg, h: sha256.New224(), want: want}, nil
	}
	return nil, fmt.Errorf("hash %q: want sha512.<hex> or sha224.<hex>: %w", s, ErrBadSpec)
}

// unpack extracts the gzip-compressed tar at tgz into dst, dropping the
// tarball's top directory ("package/"). Only directories and regular files
// are written, through an os.Root so no name can leave dst; links and
// devices are refused. Modes are normalised: 0755 for directories and
// executables, 0644 for other files, whatever the tarball says.
func (s *Store) unpack(tgz, dst string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("unpack: %w: %v", ErrBadTarball, err)
	}
	if err := mkdir0755(dst); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(zr)
	var total int64
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack: %w: %v", ErrBadTarball, err)
		}
		if entries >= maxEntries {
			return fmt.Errorf("unpack: more than %d entries: %w", maxEntries, ErrTooLarge)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(h.Name)
		if err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		if name == "" {
			continue // the top directory itself
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		case tar.TypeReg:
			total += h.Size
			if h.Size < 0 || total > s.cfg.MaxUnpackedBytes {
				return fmt.Errorf("unpack: over %d bytes: %w", s.cfg.MaxUnpackedBytes, ErrTooLarge)
			}
			if err := writeEntry(root, name, h, tr); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		default:
			return fmt.Errorf("unpack %s: type %q is not a file or directory: %w", h.Name, h.Typeflag, ErrBadTarball)
		}
	}
}

// entryName returns a tar entry's path without its top directory, checked
// to stay inside: "" for the top directory itself.
func entryName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("entry %q leaves the package: %w", name, ErrBadTarball)
	}
	_, rest, _ := strings.Cut(clean, "/")
	if !fs.ValidPath(rest) && rest != "" {
		return "", fmt.Errorf("entry %q: %w", name, ErrBadTarball)
	}
	return rest, nil
}

func writeEntry(root *os.Root, name string, h *tar.Header, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	mode := os.FileMode(0o644)
	if h.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, h.Size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The umask may have narrowed the mode; apps and builds read these
	// files as other users.
	return root.Chmod(name, mode)
}
