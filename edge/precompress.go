package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/andybalholm/brotli"
	"golang.org/x/sync/errgroup"
)

// A static build's text files are compressed once, when the build is
// prepared, into a sidecar directory beside its extracted tree:
// <dir>.precompressed/<path>.br and <path>.gz. The sidecar is never part of
// the site (it is not under the site's root), is written to a temporary
// directory and renamed into place, so it is either absent or complete, and
// is trusted from then on the way the extracted tree is. A build that ships
// its own x.js.br or x.js.gz keeps them: they are served as the variants and
// not made again.

// precompressSuffix names a build's sidecar: <dir> + precompressSuffix.
const precompressSuffix = ".precompressed"

const (
	// precompressMin is the smallest file worth compressing: below it the
	// headers and the CPU outweigh the bytes saved.
	precompressMin = 1 << 10
	// precompressMax is the largest file compressed; larger text files
	// (rare in static sites) are sent as they are.
	precompressMax = 10 << 20
)

// precompressLimits bounds the work of precompressing one build, which runs
// while it is being activated.
type precompressLimits struct {
	// maxFiles bounds the files compressed: past it, the first maxFiles
	// precompressible files (in walk order) are, the others not.
	maxFiles int
	// maxBytes bounds the bytes compressed in all; files past it stay
	// uncompressed.
	maxBytes int64
	// timeout stops the work, waiting for another build's included; the
	// files finished by then are kept.
	timeout time.Duration
}

// defaultPrecompress compresses a typical site in well under a second and
// bounds a pathological one to half a minute of activation.
var defaultPrecompress = precompressLimits{maxFiles: 20_000, maxBytes: 256 << 20, timeout: 30 * time.Second}

// encoding is one content coding the edge serves precompressed.
type encoding struct {
	ext  string   // file suffix: ".br", ".gz"
	name []string // Content-Encoding, ready for the header map
	tag  string   // ETag suffix inside the quotes
	// compress writes src compressed to w.
	compress func(w io.Writer, src []byte) error
}

// brotliBestMax is the largest file compressed at brotli's best quality
// (11), which runs at about a quarter of a MB/s; larger files get
// brotliLargeQuality, some 100 times faster for a few percent more bytes.
const (
	brotliBestMax      = 64 << 10
	brotliLargeQuality = 5
)

var (
	encBrotli = &encoding{ext: ".br", name: []string{"br"}, tag: "-br", compress: func(w io.Writer, src []byte) error {
		q := brotli.BestCompression
		if len(src) > brotliBestMax {
			q = brotliLargeQuality
		}
		zw := brotli.NewWriterLevel(w, q)
		zw.Write(src)
		return zw.Close()
	}}
	encGzip = &encoding{ext: ".gz", name: []string{"gzip"}, tag: "-gz", compress: func(w io.Writer, src []byte) error {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		zw.Write(src)
		return zw.Close()
	}}
	encodings = []*encoding{encBrotli, encGzip}
)

// precompressible reports whether a file of this name is a text kind worth
// compressing, by extension alone: the sidecar is made before anything is
// served, and an unknown extension is not guessed at.
func precompressible(name string) bool {
	ct, ok := textTypes[strings.ToLower(path.Ext(name))]
	return ok && compressible(ct)
}

// precompressSem lets one build's precompression run at a time in the
// process: each already uses every CPU, and several builds activated at once
// would otherwise multiply the activation time of each.
var precompressSem = make(chan struct{}, 1)

// precompressWaiting counts the callers waiting for precompressSem (tests).
var precompressWaiting atomic.Int64

// precompressHook, when set (tests), runs while precompressSem is held.
var precompressHook func()

// precompress makes the sidecar of the build extracted at dir unless it is
// there already, and returns its path; "" when it could not be made (the
// build is then served uncompressed, and the next activation tries again).
// Callers in one process that share dir wait for each other, and one
// build's precompression runs at a time: a caller that waits for another's
// past ctx or lim.timeout gets "" and leaves the work to the next acquire.
func precompress(ctx context.Context, dir string, lim precompressLimits, log *slog.Logger) string {
	side := filepath.Clean(dir) + precompressSuffix
	mu := extractLock(side)
	mu.Lock()
	defer mu.Unlock()
	if ok, err := isDir(side); ok || err != nil {
		if err != nil {
			log.Warn("precompress build", "dir", dir, "err", err)
			return ""
		}
		return side
	}
	start := time.Now()
	deadline := start.Add(lim.timeout)
	select {
	case precompressSem <- struct{}{}:
	default:
		wctx, cancel := context.WithDeadline(ctx, deadline)
		precompressWaiting.Add(1)
		got := false
		select {
		case precompressSem <- struct{}{}:
			got = true
		case <-wctx.Done():
		}
		precompressWaiting.Add(-1)
		cancel()
		if !got {
			log.Warn("build served uncompressed for now", "dir", dir, "reason", "another build's precompression ran past the deadline", "timeout", lim.timeout)
			return ""
		}
	}
	defer func() { <-precompressSem }()
	if precompressHook != nil {
		precompressHook()
	}
	if err := lim.write(dir, side, deadline, log); err != nil {
		log.Warn("precompress build", "dir", dir, "err", err)
		return ""
	}
	log.Debug("precompressed build", "dir", dir, "took", time.Since(start))
	return side
}

// write compresses the text files of the tree at dir into a new sidecar
// published at side.
func (lim precompressLimits) write(dir, side string, deadline time.Time, log *slog.Logger) error {
	src, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open build tree: %w", err)
	}
	defer src.Close()
	jobs, err := lim.plan(src, dir, log)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(side), "."+filepath.Base(side)+".tmp-")
	if err != nil {
		return fmt.Errorf("create sidecar: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	dst, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("open sidecar: %w", err)
	}
	defer dst.Close()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var left atomic.Int64
	g := new(errgroup.Group)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, name := range jobs {
		g.Go(func() error {
			if ctx.Err() != nil {
				left.Add(1)
				return nil
			}
			return compressFile(src, dst, name)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if n := left.Load(); n > 0 {
		log.Warn("precompression stopped at its deadline", "dir", dir, "timeout", lim.timeout, "files_left", n, "files", len(jobs))
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("chmod sidecar: %w", err)
	}
	// As with extraction, rename publishes the finished sidecar at once;
	// if another process won the race, its copy is as good as ours.
	if err := os.Rename(tmp, side); err != nil {
		if ok, _ := isDir(side); ok {
			return nil
		}
		return fmt.Errorf("publish sidecar: %w", err)
	}
	done = true
	return nil
}

// plan lists the files of the tree to compress, within lim: at most
// maxFiles of them, the first found, and none whose variant name is taken by
// something else than a regular file (a directory a.js.br/ beside a.js),
// which could not be served nor written.
func (lim precompressLimits) plan(src *os.Root, dir string, log *slog.Logger) ([]string, error) {
	var jobs []string
	var skipped int
	var total int64
	other := map[string]bool{} // names that are not regular files
	err := fs.WalkDir(src.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && name == reservedDir:
			return fs.SkipDir
		case !d.Type().IsRegular(): // directories, and symlinks are not followed
			other[name] = true
			return nil
		}
		if !precompressible(name) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() < precompressMin || fi.Size() > precompressMax {
			return nil
		}
		if total+fi.Size() > lim.maxBytes {
			skipped++
			return nil
		}
		total += fi.Size()
		jobs = append(jobs, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list build files: %w", err)
	}
	kept := jobs[:0]
	var collide []string
	for _, name := range jobs {
		if other[name+encBrotli.ext] || other[name+encGzip.ext] {
			collide = append(collide, name)
			continue
		}
		kept = append(kept, name)
	}
	jobs = kept
	if len(collide) > 0 {
		log.Warn("files not precompressed", "dir", dir, "reason", "a directory or link has the name of their .br or .gz", "files", len(collide), "first", collide[0])
	}
	if len(jobs) > lim.maxFiles {
		log.Warn("build partly precompressed", "dir", dir, "reason", "too many files", "max_files", lim.maxFiles, "files_skipped", len(jobs)-lim.maxFiles)
		jobs = jobs[:lim.maxFiles]
	}
	if skipped > 0 {
		log.Warn("build partly precompressed", "dir", dir, "reason", "too many bytes", "max_bytes", lim.maxBytes, "files_skipped", skipped)
	}
	return jobs, nil
}

// compressFile writes name's variants into dst, except those the build ships
// itself and those that would not save a tenth of the size.
func compressFile(src, dst *os.Root, name string) error {
	data, err := src.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	var buf bytes.Buffer
	for _, enc := range encodings {
		if fi, err := src.Stat(name + enc.ext); err == nil && fi.Mode().IsRegular() {
			continue
		}
		buf.Reset()
		if err := enc.compress(&buf, data); err != nil {
			return fmt.Errorf("compress %s: %w", name, err)
		}
		if buf.Len() >= len(data)*9/10 {
			continue
		}
		if err := dst.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("create sidecar dir for %s: %w", name, err)
		}
		if err := dst.WriteFile(name+enc.ext, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s%s: %w", name, enc.ext, err)
		}
	}
	return nil
}
