package fspf

import (
	"crypto/hmac"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/layout"
)

// ReadMetadata reads /fspf/fs.fspf of tree, refusing what is not a readable regular file of sane size.
func ReadMetadata(tree string) ([]byte, error) {
	handle, err := OpenRegular(HostPath(tree, layout.FspfMetadata))
	if err != nil {
		var special *NotRegularFileError
		switch {
		case os.IsNotExist(err):
			return nil, integrity("Verification of %s failed: the file is missing", layout.FspfMetadata)
		case errors.As(err, &special):
			return nil, integrity("Verification of %s failed: %s, not a regular file", layout.FspfMetadata, special.Kind)
		}
		return nil, integrity("Verification of %s failed: not a readable file", layout.FspfMetadata)
	}
	defer handle.Close()
	data, err := io.ReadAll(io.LimitReader(handle, MaxMetadataBytes+1))
	if err != nil {
		return nil, integrity("Verification of %s failed: not a readable file", layout.FspfMetadata)
	}
	if len(data) > MaxMetadataBytes {
		return nil, integrity("Verification of %s failed: larger than %d bytes", layout.FspfMetadata, MaxMetadataBytes)
	}
	return data, nil
}

func sameRegions(a, b []Region) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DecryptTree verifies tree against the state key and tag name, then writes the plaintext of its
// encrypted regions into place. beforeWriting is called with each encrypted region's directory before
// anything is written (the runtime refuses one that is not memory-backed). observation is what the
// measurement saw a moment ago; it is used only if it covers exactly the sealed regions. On failure,
// nothing this call wrote is left behind.
func DecryptTree(tree string, key, tag []byte, beforeWriting func(string) error, observation *Observation) (*Manifest, error) {
	data, err := ReadMetadata(tree)
	if err != nil {
		return nil, err
	}
	manifest, err := Unseal(data, key, ImageContext(), layout.FspfMetadata, tag)
	if err != nil {
		return nil, err
	}
	if observation != nil && !sameRegions(observation.Regions, manifest.Regions) {
		observation = nil // it saw other regions than the sealed ones: look again
	}
	if err := checkLayout(tree, manifest, observation); err != nil {
		return nil, err
	}
	if err := verifyAllAuthenticated(tree, manifest, observation); err != nil {
		return nil, err
	}
	if beforeWriting != nil {
		for _, region := range manifest.Regions {
			if region.Protection == ProtectionEncrypt {
				if err := beforeWriting(HostPath(tree, region.Path)); err != nil {
					return nil, err
				}
			}
		}
	}
	var created []string
	fail := func(err error) (*Manifest, error) {
		for i := len(created) - 1; i >= 0; i-- {
			os.RemoveAll(created[i])
		}
		return nil, err
	}
	for i := range manifest.Entries { // walk order: a directory comes before what it holds
		entry := &manifest.Entries[i]
		if entry.Protection != ProtectionEncrypt {
			continue
		}
		if err := makeDirectories(tree, parentOf(entry.Path), &created); err != nil {
			return fail(err)
		}
		target := HostPath(tree, entry.Path)
		switch entry.Type {
		case "dir":
			if err := makeDirectories(tree, entry.Path, &created); err != nil {
				return fail(err)
			}
		case "symlink":
			if err := os.Symlink(entry.Target, target); err != nil {
				return fail(err)
			}
			created = append(created, target)
		default:
			if err := decryptInto(tree, manifest, entry, target, &created); err != nil {
				return fail(err)
			}
		}
	}
	for i := len(manifest.Entries) - 1; i >= 0; i-- {
		entry := &manifest.Entries[i]
		if entry.Protection == ProtectionEncrypt && entry.Type == "dir" {
			if err := chmod(HostPath(tree, entry.Path), entry.Mode); err != nil {
				return fail(err)
			}
		}
	}
	return manifest, nil
}

// modeBits turns the set-user-ID, set-group-ID and sticky bits of a Unix mode into Go's.
func modeBits(mode uint32) os.FileMode {
	var bits os.FileMode
	if mode&0o4000 != 0 {
		bits |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		bits |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		bits |= os.ModeSticky
	}
	return bits
}

func chmod(location string, mode uint32) error {
	return os.Chmod(location, os.FileMode(mode&0o777)|modeBits(mode))
}

func decryptInto(tree string, manifest *Manifest, entry *Entry, target string, created *[]string) error {
	source, err := OpenRegular(filepath.Join(HostPath(tree, layout.FspfData), entry.Blob))
	if err != nil || entry.Blob == "" {
		return integrity("Verification of file %s failed: its encrypted content is missing", entry.Path)
	}
	defer source.Close()
	sink, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	*created = append(*created, target)
	err = DecryptFile(entry.Key, entry.Path, newReader(source), sink, entry.Size, manifest.ChunkSize, entry.Path)
	if closeErr := sink.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return chmod(target, entry.Mode)
}

func makeDirectories(root, path string, created *[]string) error {
	if path == "/" {
		return nil
	}
	location := root
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		location = filepath.Join(location, part)
		info, err := os.Lstat(location)
		switch {
		case err == nil && info.Mode()&os.ModeSymlink != 0:
			return integrity("decrypting %s: %s is a symbolic link in the destination", path, location)
		case err == nil:
			continue
		case os.IsNotExist(err):
			if err := os.Mkdir(location, 0o700); err != nil {
				return err
			}
			*created = append(*created, location)
		default:
			return err
		}
	}
	return nil
}

func isMountPoint(path string, regions []Region) bool {
	for _, region := range regions {
		if IsWithin(region.Path, path) {
			return true
		}
	}
	return false
}

// checkLayout: everything present in a protected region (and in /fspf) must be listed, with its type.
func checkLayout(tree string, manifest *Manifest, observation *Observation) error {
	entries := manifest.EntryMap()
	blobs := map[string]bool{}
	for i := range manifest.Entries {
		if manifest.Entries[i].Blob != "" {
			blobs[manifest.Entries[i].Blob] = true
		}
	}
	type seen struct {
		path string
		stat Stat
	}
	var paths []seen
	roots := append([]string{layout.FspfDir}, ProtectedRoots(manifest.Regions)...)
	if observation != nil {
		for _, path := range observation.Order {
			paths = append(paths, seen{path, observation.Stats[path]})
		}
		roots = []string{layout.FspfDir}
	}
	for _, root := range roots {
		info, err := lstat(HostPath(tree, root))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return err
		}
		if root != "/" {
			paths = append(paths, seen{root, info})
		}
		if info.isDir() {
			below, err := Walk(tree, root)
			if err != nil {
				return err
			}
			for _, entry := range below {
				paths = append(paths, seen{entry.Path, entry.Stat})
			}
		}
	}
	regions := NewRegionMap(manifest.Regions)
	for _, item := range paths {
		path, info := item.path, item.stat
		if IsWithin(path, layout.FspfDir) {
			if err := checkFspfEntry(path, info, blobs); err != nil {
				return err
			}
			continue
		}
		region := regions.Of(path)
		switch region.Protection {
		case ProtectionNone:
			continue
		case ProtectionEncrypt:
			if info.isDir() && isMountPoint(path, manifest.Regions) {
				continue
			}
			return integrity("Verification of %s failed: unexpected entry in encrypted region %s", path, region.Path)
		}
		entry, listed := entries[path]
		if !listed {
			return integrity("Verification of %s failed: unexpected entry in authenticated region %s", path, region.Path)
		}
		if info.typeName() != entry.Type {
			return integrity("Verification of %s failed: expected a %s, found a %s", path, entry.Type, info.typeName())
		}
	}
	return nil
}

func checkFspfEntry(path string, info Stat, blobs map[string]bool) error {
	if (path == layout.FspfDir || path == layout.FspfData) && info.isDir() {
		return nil
	}
	if path == layout.FspfMetadata && info.isReg() {
		return nil
	}
	name := filepath.Base(path)
	if path == layout.FspfData+"/"+name && blobs[name] && info.isReg() {
		return nil
	}
	return integrity("Verification of %s failed: unexpected entry in %s", path, layout.FspfDir)
}

// verifyAllAuthenticated checks every authenticated entry on every core (a Debian root has some 7,000, each
// an lstat and a list of extended attributes); the refusal is the first failing entry's in the sealed order,
// as a serial check would give.
func verifyAllAuthenticated(tree string, manifest *Manifest, observation *Observation) error {
	failures := make([]error, len(manifest.Entries))
	next := make(chan int, 256)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				failures[i] = verifyAuthenticated(tree, manifest, &manifest.Entries[i], observation)
			}
		}()
	}
	for i := range manifest.Entries {
		if manifest.Entries[i].Protection == ProtectionAuth {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	for _, err := range failures {
		if err != nil {
			return err
		}
	}
	return nil
}

func verifyAuthenticated(tree string, manifest *Manifest, entry *Entry, observation *Observation) error {
	location := HostPath(tree, entry.Path)
	var info Stat
	var present bool
	var link string
	if observation != nil {
		info, present = observation.Stats[entry.Path]
		link = observation.Links[entry.Path]
	} else {
		var err error
		info, err = lstat(location)
		present = err == nil
		if present && info.isLink() {
			if link, err = os.Readlink(location); err != nil {
				return err
			}
		}
	}
	if !present && closedToUs(location) {
		// Below a directory this runtime's user may not enter: its program cannot reach it either.
		return nil
	}
	if !present {
		return integrity("Verification of %s failed: the %s is missing", entry.Path, entry.Type)
	}
	if info.typeName() != entry.Type {
		return integrity("Verification of %s failed: expected a %s, found a %s", entry.Path, entry.Type, info.typeName())
	}
	xattrs, err := ReadXattrs(location)
	if err != nil {
		return err
	}
	found := Attributes{UID: info.UID, GID: info.GID, Xattrs: xattrs}
	if err := CheckAttributes(entry.Path, entry.Type, entry.UID, entry.GID, entry.Xattrs, found); err != nil {
		return err
	}
	if entry.Type == "symlink" {
		if link != entry.Target {
			return integrity("Verification of %s failed: the link points elsewhere", entry.Path)
		}
		return nil
	}
	if info.perm() != entry.Mode {
		return integrity("Verification of %s failed: its permissions changed", entry.Path)
	}
	if entry.Type == "dir" {
		return nil
	}
	if observation != nil && len(entry.Digest) > 0 {
		if known, ok := observation.Digests[entry.Path]; ok {
			if info.Size != entry.Size || !hmac.Equal(known, entry.Digest) {
				return integrity("Verification of file %s failed: its content is not the protected one", entry.Path)
			}
			return nil
		}
	}
	source, err := OpenRegular(location)
	if errors.Is(err, unix.EACCES) {
		return nil // its owner and mode are the sealed ones, and they let neither this runtime nor its program read it
	}
	if err != nil {
		return err
	}
	defer source.Close()
	return VerifyAuthenticatedFile(entry.Key, entry.Path, newReader(source), entry.Size, manifest.ChunkSize, entry.Tags)
}

// closedToUs tells whether location cannot be reached by this process for want of permission on the way.
func closedToUs(location string) bool {
	var st unix.Stat_t
	return errors.Is(unix.Lstat(location, &st), unix.EACCES)
}
