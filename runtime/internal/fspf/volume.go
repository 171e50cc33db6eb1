package fspf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// AnchorState is a committed state of a volume: its generation and the tag of its metadata.
type AnchorState struct {
	Generation int64
	Tag        []byte
}

// Equal compares two states, either of which may be nil.
func (s *AnchorState) Equal(other *AnchorState) bool {
	if s == nil || other == nil {
		return s == nil && other == nil
	}
	return s.Generation == other.Generation && hmac.Equal(s.Tag, other.Tag)
}

// FreshnessAnchor keeps each volume's latest committed state outside the volume (the CAS).
type FreshnessAnchor interface {
	Current(volume string) (*AnchorState, error)
	CompareAndSwap(volume string, expected *AnchorState, next AnchorState) error
}

// Volume is an encrypted, rollback-protected volume opened into a plaintext working directory. Its
// storage and commit protocol are engine/fspf/volume.py's (state.<generation>.<tag>.fspf and data/),
// step for step, so that either side opens what the other committed.
type Volume struct {
	Storage, Workdir, Name, MountPath string
	key                               []byte
	anchor                            FreshnessAnchor
	chunkSize                         int64
	committed                         *AnchorState
	manifest                          *Manifest
	unconfirmed                       *pending // a commit whose swap may or may not have happened
}

type pending struct {
	state    AnchorState
	manifest *Manifest
}

const (
	dataDir       = "data"
	statePrefix   = "state."
	stateSuffix   = ".fspf"
	temporaryName = ".tmp"
)

// StateFileName is state.<generation>.<tag>.fspf: unique per sealing.
func StateFileName(state AnchorState) string {
	return fmt.Sprintf("%s%d.%s%s", statePrefix, state.Generation, hex.EncodeToString(state.Tag), stateSuffix)
}

// Generation is the committed generation; 0 before the first commit.
func (v *Volume) Generation() int64 {
	if v.committed == nil {
		return 0
	}
	return v.committed.Generation
}

// OpenVolume verifies the committed state in storage and decrypts it into workdir (an empty directory).
// It reads storage only; a storage that does not hold the state the anchor committed is a RollbackError.
func OpenVolume(storage, workdir, name string, key []byte, anchor FreshnessAnchor, mountPath string) (*Volume, error) {
	if len(key) != 32 {
		return nil, &UsageError{fmt.Sprintf("volume %s: key must be 32 bytes", name)}
	}
	if names, err := readNames(workdir); err != nil || len(names) > 0 {
		return nil, &UsageError{fmt.Sprintf("volume %s: working directory %s must be an empty directory", name, workdir)}
	}
	committed, err := anchor.Current(name)
	if err != nil {
		return nil, err
	}
	v := &Volume{Storage: storage, Workdir: workdir, Name: name, MountPath: mountPath, key: key,
		anchor: anchor, chunkSize: DefaultChunkSize, committed: committed}
	if committed != nil {
		if v.manifest, err = v.readCommitted(*committed); err != nil {
			return nil, err
		}
		if err := v.decryptAll(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (v *Volume) readCommitted(committed AnchorState) (*Manifest, error) {
	handle, err := OpenRegular(filepath.Join(v.Storage, StateFileName(committed)))
	if err != nil {
		return nil, rollback("volume %s: committed state %d is missing (the volume was deleted or replaced by an older copy)", v.Name, committed.Generation)
	}
	defer handle.Close()
	data, err := io.ReadAll(io.LimitReader(handle, MaxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	shown := fmt.Sprintf("volume %s state %d", v.Name, committed.Generation)
	tag, err := StoredTag(data, shown)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(tag, committed.Tag) {
		return nil, rollback("volume %s: state %d on disk is not the committed one (rolled back or replaced)", v.Name, committed.Generation)
	}
	manifest, err := Unseal(data, v.key, VolumeContext(v.Name, committed.Generation), shown, nil)
	if err != nil {
		return nil, err
	}
	if manifest.Kind != "volume" || manifest.Volume != v.Name || manifest.Generation != committed.Generation {
		return nil, integrity("Verification of %s failed: it belongs to another volume or generation", shown)
	}
	return manifest, nil
}

func (v *Volume) shown(path string) string {
	if v.MountPath == "/" {
		return path
	}
	return strings.TrimRight(v.MountPath, "/") + path
}

func (v *Volume) decryptAll() error {
	for i := range v.manifest.Entries { // walk order: directories before their contents
		entry := &v.manifest.Entries[i]
		target := HostPath(v.Workdir, entry.Path)
		switch entry.Type {
		case "dir":
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		case "symlink":
			if err := os.Symlink(entry.Target, target); err != nil {
				return err
			}
		default:
			if err := v.decryptFile(entry, target); err != nil {
				return err
			}
		}
	}
	for i := len(v.manifest.Entries) - 1; i >= 0; i-- {
		if entry := &v.manifest.Entries[i]; entry.Type == "dir" {
			if err := chmod(HostPath(v.Workdir, entry.Path), entry.Mode); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *Volume) decryptFile(entry *Entry, target string) error {
	source, err := OpenRegular(filepath.Join(v.Storage, dataDir, entry.Blob))
	if err != nil || entry.Blob == "" {
		return integrity("Verification of file %s failed: its encrypted content is missing", v.shown(entry.Path))
	}
	defer source.Close()
	sink, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	err = DecryptFile(entry.Key, entry.Path, newReader(source), sink, entry.Size, v.manifest.ChunkSize, v.shown(entry.Path))
	if closeErr := sink.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return chmod(target, entry.Mode)
}

// Commit makes the working directory the volume's new committed state: new ciphertext, a new state file,
// the anchor swapped, then what is no longer referenced removed. A crash at any step leaves the old or
// the new state readable. Returns the committed state (the current one if nothing changed).
func (v *Volume) Commit() (*AnchorState, error) {
	if v.unconfirmed != nil {
		if err := v.settle(); err != nil {
			return nil, err
		}
	}
	old := map[string]*Entry{}
	if v.manifest != nil {
		old = v.manifest.EntryMap()
	}
	data := filepath.Join(v.Storage, dataDir)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	walked, err := Walk(v.Workdir, "/")
	if err != nil {
		return nil, err
	}
	var newBlobs []string
	entries := make([]Entry, 0, len(walked))
	unchanged := v.committed != nil && len(walked) == len(old)
	for _, item := range walked {
		entry, err := v.snapshot(item, old[item.Path], data, &newBlobs)
		if err != nil {
			removeAll(newBlobs)
			return nil, err
		}
		if previous := old[item.Path]; previous == nil || !sameEntry(previous, &entry) {
			unchanged = false
		}
		entries = append(entries, entry)
	}
	if unchanged {
		return v.committed, nil
	}
	if err := FsyncDirectory(data); err != nil {
		return nil, err
	}
	generation := v.Generation() + 1
	manifest := &Manifest{Kind: "volume", ChunkSize: v.chunkSize, Entries: entries, Volume: v.Name, Generation: generation}
	sealed, tag, err := Seal(manifest, v.key, VolumeContext(v.Name, generation))
	if err != nil {
		return nil, err
	}
	next := AnchorState{generation, tag}
	final := filepath.Join(v.Storage, StateFileName(next))
	if err := writeDurably(final+temporaryName, sealed); err != nil {
		return nil, err
	}
	if err := os.Rename(final+temporaryName, final); err != nil {
		return nil, err
	}
	if err := FsyncDirectory(v.Storage); err != nil {
		return nil, err
	}
	if err := v.anchor.CompareAndSwap(v.Name, v.committed, next); err != nil {
		var conflict *AnchorConflictError
		if errors.As(err, &conflict) {
			// Certainly not committed: undo, so the conflict changes nothing.
			os.Remove(final)
			removeAll(newBlobs)
		} else {
			// The swap may or may not have happened: keep both states; the next commit asks the anchor.
			v.unconfirmed = &pending{next, manifest}
		}
		return nil, err
	}
	v.committed, v.manifest = &next, manifest
	return v.committed, v.collectGarbage()
}

func sameEntry(a, b *Entry) bool {
	return a.Path == b.Path && a.Type == b.Type && a.Mode == b.Mode && a.Size == b.Size &&
		a.Blob == b.Blob && a.Target == b.Target && hmac.Equal(a.Digest, b.Digest)
}

func removeAll(paths []string) {
	for _, path := range paths {
		os.Remove(path)
	}
}

func writeDurably(location string, data []byte) error {
	handle, err := os.OpenFile(location, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o644)
	if err != nil {
		return err
	}
	if _, err := handle.Write(data); err != nil {
		handle.Close()
		return err
	}
	if err := handle.Sync(); err != nil {
		handle.Close()
		return err
	}
	return handle.Close()
}

func (v *Volume) settle() error {
	current, err := v.anchor.Current(v.Name)
	if err != nil {
		return err
	}
	state := v.unconfirmed.state
	switch {
	case current.Equal(&state):
		v.committed, v.manifest = &state, v.unconfirmed.manifest
		v.unconfirmed = nil
		return v.collectGarbage()
	case !current.Equal(v.committed):
		return &AnchorConflictError{fmt.Sprintf("volume %s: another state was committed meanwhile", v.Name)}
	}
	v.unconfirmed = nil
	return nil
}

func (v *Volume) snapshot(item WalkEntry, old *Entry, data string, newBlobs *[]string) (Entry, error) {
	mode := item.Stat.perm()
	switch {
	case item.Stat.isDir():
		return Entry{Path: item.Path, Type: "dir", Protection: ProtectionEncrypt, Mode: mode}, nil
	case item.Stat.isLink():
		target, err := os.Readlink(item.Location)
		return Entry{Path: item.Path, Type: "symlink", Protection: ProtectionEncrypt, Mode: 0o777, Target: target, HasTarget: true}, err
	case !item.Stat.isReg():
		return Entry{}, &UsageError{fmt.Sprintf("volume %s: %s is not a file, directory or link", v.Name, v.shown(item.Path))}
	}
	if old != nil && old.Type == "file" && old.Size == item.Stat.Size && len(old.Key) > 0 && len(old.Digest) > 0 {
		digest, err := v.tagsDigest(old.Key, item)
		if err != nil {
			return Entry{}, err
		}
		if hmac.Equal(digest, old.Digest) {
			kept := *old
			kept.Mode = mode
			return kept, nil
		}
	}
	key := make([]byte, 32)
	name := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return Entry{}, err
	}
	if _, err := rand.Read(name); err != nil {
		return Entry{}, err
	}
	blob := hex.EncodeToString(name)
	target := filepath.Join(data, blob)
	source, err := OpenRegular(item.Location)
	if err != nil {
		return Entry{}, err
	}
	defer source.Close()
	sink, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o644)
	if err != nil {
		return Entry{}, err
	}
	*newBlobs = append(*newBlobs, target)
	tags := sha256.New()
	err = EncryptFile(key, item.Path, newReader(source), sink, item.Stat.Size, v.chunkSize, tags)
	if err == nil {
		err = sink.Sync()
	}
	if closeErr := sink.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return Entry{}, err
	}
	return Entry{Path: item.Path, Type: "file", Protection: ProtectionEncrypt, Mode: mode, Size: item.Stat.Size,
		Key: key, Blob: blob, Digest: tags.Sum(nil)}, nil
}

// tagsDigest is SHA-256 over the chunk tags the file would get under its earlier key: equal exactly for
// unchanged content (see engine/fspf/chunks.py chunk_tags_digest).
func (v *Volume) tagsDigest(key []byte, item WalkEntry) ([]byte, error) {
	source, err := OpenRegular(item.Location)
	if err != nil {
		return nil, err
	}
	defer source.Close()
	tags := sha256.New()
	if err := EncryptFile(key, item.Path, newReader(source), nil, item.Stat.Size, v.chunkSize, tags); err != nil {
		return nil, err
	}
	return tags.Sum(nil), nil
}

func (v *Volume) collectGarbage() error {
	keep := StateFileName(*v.committed)
	names, err := readNames(v.Storage)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, statePrefix) && name != keep {
			os.Remove(filepath.Join(v.Storage, name))
		}
	}
	if err := FsyncDirectory(v.Storage); err != nil {
		return err
	}
	referenced := map[string]bool{}
	for i := range v.manifest.Entries {
		referenced[v.manifest.Entries[i].Blob] = true
	}
	data := filepath.Join(v.Storage, dataDir)
	names, err = readNames(data)
	if err != nil {
		return err
	}
	for _, name := range names {
		if !referenced[name] {
			os.Remove(filepath.Join(data, name))
		}
	}
	return FsyncDirectory(data)
}
