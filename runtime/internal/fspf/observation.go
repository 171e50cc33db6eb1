package fspf

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"

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

// RegionOf is the region path belongs to: the nearest of it and its ancestors that is a region's root.
func RegionOf(path string, regions []Region) Region {
	byPath := map[string]Region{}
	for _, region := range regions {
		byPath[region.Path] = region
	}
	for {
		if region, ok := byPath[path]; ok {
			return region
		}
		if path == "/" {
			return Region{"/", ProtectionNone}
		}
		cut := len(path) - 1
		for cut > 0 && path[cut] != '/' {
			cut--
		}
		path = path[:cut]
		if path == "" {
			path = "/"
		}
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

// Observe walks the protected regions of root once and hashes what is authenticated.
func Observe(root string, regions []Region) (*Observation, error) {
	byPath := map[string]string{}
	for _, region := range regions {
		byPath[region.Path] = region.Protection
	}
	o := &Observation{Regions: regions, Stats: map[string]Stat{}, Links: map[string]string{},
		Protections: map[string]string{}}
	var files []WalkEntry
	for _, walkRoot := range ProtectedRoots(regions) {
		location := HostPath(root, walkRoot)
		info, err := lstat(location)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		outer := RegionOf(walkRoot, regions).Protection
		entries := []WalkEntry{}
		if walkRoot != "/" {
			entries = append(entries, WalkEntry{walkRoot, location, info})
		}
		if info.isDir() {
			below, err := Walk(root, walkRoot)
			if err != nil {
				return nil, err
			}
			entries = append(entries, below...)
		}
		// The protection is carried down the walk: a child has its parent's unless a region starts at it.
		protectionOf := map[string]string{walkRoot: outer}
		for _, entry := range entries {
			protection, starts := byPath[entry.Path]
			if !starts {
				protection = protectionOf[parentOf(entry.Path)]
			}
			if entry.Stat.isDir() {
				protectionOf[entry.Path] = protection
			}
			o.Order = append(o.Order, entry.Path)
			o.Stats[entry.Path] = entry.Stat
			o.Protections[entry.Path] = protection
			if protection != ProtectionAuth {
				continue
			}
			switch {
			case entry.Stat.isReg():
				files = append(files, entry)
			case entry.Stat.isLink():
				target, err := os.Readlink(entry.Location)
				if err != nil {
					return nil, err
				}
				o.Links[entry.Path] = target
			case !entry.Stat.isDir():
				return nil, &SpecialFileError{entry.Path}
			}
		}
	}
	digests, err := sha256All(files)
	if err != nil {
		return nil, err
	}
	o.Digests = digests
	return o, nil
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

// sha256All hashes the files on every core the runtime may use, largest first.
func sha256All(files []WalkEntry) (map[string][]byte, error) {
	sort.SliceStable(files, func(i, j int) bool { return files[i].Stat.Size > files[j].Stat.Size })
	digests := make(map[string][]byte, len(files))
	var mu sync.Mutex
	var firstErr error
	work := make(chan WalkEntry)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buffer := make([]byte, 1<<20)
			for file := range work {
				digest, err := sha256File(file.Location, buffer)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				digests[file.Path] = digest
				mu.Unlock()
			}
		}()
	}
	for _, file := range files {
		work <- file
	}
	close(work)
	wg.Wait()
	return digests, firstErr
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
