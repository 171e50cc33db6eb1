package fspf

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/layout"
)

// Observation is what one walk over a tree's protected regions found, so that measuring and verifying
// read the disk once: the lstat of every entry below the outermost protected roots, the targets of
// authenticated links and the SHA-256 of authenticated files.
type Observation struct {
	Regions     []Region
	Order       []string // paths in walk order
	Stats       map[string]Stat
	Links       map[string]string
	Digests     map[string][]byte
	Protections map[string]string
}

// NormaliseRegions checks region paths, refuses conflicts and adds the not-protected root; sorted.
func NormaliseRegions(regions []Region) ([]Region, error) {
	byPath := map[string]Region{}
	for _, region := range regions {
		if !CheckTreePath(region.Path) {
			return nil, fmt.Errorf("region %q: expected a normalised absolute path inside the tree, such as /code", region.Path)
		}
		switch region.Protection {
		case ProtectionNone, ProtectionAuth, ProtectionEncrypt:
		default:
			return nil, fmt.Errorf("region %s: unknown protection %q", region.Path, region.Protection)
		}
		if IsWithin(region.Path, layout.FspfDir) {
			return nil, fmt.Errorf("region %s: %s holds the protection metadata itself", region.Path, layout.FspfDir)
		}
		if previous, ok := byPath[region.Path]; ok && previous.Protection != region.Protection {
			return nil, fmt.Errorf("region %s: given as both %s and %s", region.Path, previous.Protection, region.Protection)
		}
		byPath[region.Path] = region
	}
	if _, ok := byPath["/"]; !ok {
		byPath["/"] = Region{"/", ProtectionNone}
	}
	out := make([]Region, 0, len(byPath))
	for _, region := range byPath {
		out = append(out, region)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// RegionMap tells which region a path belongs to: the nearest of it and its ancestors that is a region's
// root (/ always is, once regions are normalised). Made once per tree, asked once per path.
type RegionMap map[string]Region

// NewRegionMap indexes regions by their root.
func NewRegionMap(regions []Region) RegionMap {
	byPath := RegionMap{}
	for _, region := range regions {
		byPath[region.Path] = region
	}
	return byPath
}

// Of is the region path belongs to.
func (m RegionMap) Of(path string) Region {
	for {
		if region, ok := m[path]; ok {
			return region
		}
		if path == "/" {
			return Region{"/", ProtectionNone}
		}
		path = parentOf(path)
	}
}

// ProtectedRoots are the outermost protected region paths, sorted.
func ProtectedRoots(regions []Region) []string {
	var protected, roots []string
	for _, region := range regions {
		if region.Protection != ProtectionNone {
			protected = append(protected, region.Path)
		}
	}
	for _, path := range protected {
		inner := false
		for _, other := range protected {
			if other != path && IsWithin(path, other) {
				inner = true
			}
		}
		if !inner {
			roots = append(roots, path)
		}
	}
	sort.Strings(roots)
	return roots
}

// SpecialFileError is a device, pipe or socket in an authenticated region: nothing can vouch for it.
type SpecialFileError struct{ Path string }

func (e *SpecialFileError) Error() string { return e.Path + ": a special file in authenticated region" }

// Observe walks the protected regions of root once and hashes what is authenticated. /fspf is not walked
// (the protection's own metadata, checked by its own rules and never measured), nor is a directory left
// unprotected with no protected region inside (/proc, /tmp: nothing there is vouched for).
func Observe(root string, regions []Region) (*Observation, error) {
	w := &observer{byPath: map[string]string{}, o: &Observation{Regions: regions, Stats: map[string]Stat{},
		Links: map[string]string{}, Protections: map[string]string{}}, hashing: newHasher()}
	defer w.hashing.stop() // on an early return: the workers end
	for _, region := range regions {
		w.byPath[region.Path] = region.Protection
		if region.Protection != ProtectionNone {
			w.protected = append(w.protected, region.Path)
		}
	}
	for _, walkRoot := range ProtectedRoots(regions) {
		location := HostPath(root, walkRoot)
		info, err := lstat(location)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		protection := NewRegionMap(regions).Of(walkRoot).Protection
		if walkRoot != "/" {
			if err := w.record(walkRoot, location, info, protection); err != nil {
				return nil, err
			}
		}
		if info.isDir() && w.descend(walkRoot, protection) {
			if err := w.below(location, walkRoot, protection); err != nil {
				return nil, err
			}
		}
	}
	digests, err := w.hashing.stop()
	if err != nil {
		return nil, err
	}
	w.o.Digests = digests
	return w.o, nil
}

type observer struct {
	byPath    map[string]string
	protected []string
	o         *Observation
	hashing   *hasher
}

func (w *observer) descend(path, protection string) bool {
	if protection != ProtectionNone {
		return true
	}
	for _, inner := range w.protected {
		if inner != path && IsWithin(inner, path) {
			return true
		}
	}
	return false
}

func (w *observer) below(directory, parent, protection string) error {
	names, err := readNames(directory)
	if errors.Is(err, unix.EACCES) {
		return nil // closed to this runtime's user, and so to its program: measured by its metadata only
	}
	if err != nil {
		return err
	}
	for _, name := range names {
		path := child(parent, name)
		if path == layout.FspfDir {
			continue
		}
		location := filepath.Join(directory, name)
		info, err := lstat(location)
		if err != nil {
			return err
		}
		inner, starts := w.byPath[path]
		if !starts {
			inner = protection // carried down: a child has its parent's unless a region starts at it
		}
		if err := w.record(path, location, info, inner); err != nil {
			return err
		}
		if info.isDir() && w.descend(path, inner) {
			if err := w.below(location, path, inner); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *observer) record(path, location string, info Stat, protection string) error {
	w.o.Order = append(w.o.Order, path)
	w.o.Stats[path] = info
	w.o.Protections[path] = protection
	if protection != ProtectionAuth {
		return nil
	}
	switch {
	case info.isReg():
		w.hashing.add(WalkEntry{path, location, info})
	case info.isLink():
		target, err := os.Readlink(location)
		if err != nil {
			return err
		}
		w.o.Links[path] = target
	case !info.isDir():
		return &SpecialFileError{path}
	}
	return nil
}

func parentOf(path string) string {
	cut := len(path) - 1
	for cut > 0 && path[cut] != '/' {
		cut--
	}
	if cut == 0 {
		return "/"
	}
	return path[:cut]
}

// hasher hashes files on every core the runtime may use while the walk goes on, so that the walk's system
// calls and the hashing overlap (a Debian root has some 7,000 files, most of them small).
type hasher struct {
	work    chan WalkEntry
	wg      sync.WaitGroup
	mu      sync.Mutex
	digests map[string][]byte
	err     error
	stopped bool
}

func newHasher() *hasher {
	h := &hasher{work: make(chan WalkEntry, 1024), digests: map[string][]byte{}}
	for range max(1, runtime.GOMAXPROCS(0)) {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			buffer := make([]byte, 1<<20)
			for file := range h.work {
				digest, err := sha256File(file.Location, buffer)
				if errors.Is(err, unix.EACCES) {
					continue // unreadable to this runtime's user, and so to its program
				}
				h.mu.Lock()
				if err != nil && h.err == nil {
					h.err = err
				}
				h.digests[file.Path] = digest
				h.mu.Unlock()
			}
		}()
	}
	return h
}

func (h *hasher) add(file WalkEntry) { h.work <- file }

// stop waits for every file given and returns the digests; called again, it returns the same.
func (h *hasher) stop() (map[string][]byte, error) {
	if !h.stopped {
		h.stopped = true
		close(h.work)
		h.wg.Wait()
	}
	return h.digests, h.err
}

func sha256File(location string, buffer []byte) ([]byte, error) {
	handle, err := OpenRegular(location)
	if err != nil {
		return nil, err
	}
	defer handle.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, handle, buffer); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
