package fspf_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/vectors"
)

type chunkCase struct {
	Key, Path        string
	Size             int64
	ChunkSize        int64  `json:"chunk_size"`
	CiphertextSha256 string `json:"ciphertext_sha256"`
	Tags             string
}

func loadChunks(t *testing.T) []chunkCase {
	var cases []chunkCase
	vectors.Load(t, "chunks.json", &cases)
	if len(cases) < 5 {
		t.Fatalf("%d cases", len(cases))
	}
	return cases
}

func TestChunksAreTheEngines(t *testing.T) {
	for _, c := range loadChunks(t) {
		key, plain := vectors.Hex(t, c.Key), vectors.Pattern(int(c.Size))
		var sealed bytes.Buffer
		if err := fspf.EncryptFile(key, c.Path, bytes.NewReader(plain), &sealed, c.Size, c.ChunkSize, nil); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(sealed.Bytes()); hex.EncodeToString(sum[:]) != c.CiphertextSha256 {
			t.Errorf("%s: the ciphertext differs from the engine's", c.Path)
		}
		var opened bytes.Buffer
		if err := fspf.DecryptFile(key, c.Path, bytes.NewReader(sealed.Bytes()), &opened, c.Size, c.ChunkSize, c.Path); err != nil {
			t.Fatalf("%s: %v", c.Path, err)
		}
		if !bytes.Equal(opened.Bytes(), plain) {
			t.Errorf("%s: decrypted content differs", c.Path)
		}
		if err := fspf.VerifyAuthenticatedFile(key, c.Path, bytes.NewReader(plain), c.Size, c.ChunkSize, vectors.Hex(t, c.Tags)); err != nil {
			t.Errorf("%s: the engine's tags do not verify: %v", c.Path, err)
		}
	}
}

// Every attack on a chunked file is named as the engine names it: the chunk and its bytes.
func TestChangedChunksAreNamed(t *testing.T) {
	c := loadChunks(t)[3] // 100 bytes in chunks of 16
	key, plain := vectors.Hex(t, c.Key), vectors.Pattern(int(c.Size))
	var sealed bytes.Buffer
	if err := fspf.EncryptFile(key, c.Path, bytes.NewReader(plain), &sealed, c.Size, c.ChunkSize, nil); err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte{}, sealed.Bytes()...)
	flipped[2*(16+16)+3] ^= 1
	attacks := map[string]struct {
		data []byte
		want string
	}{
		"a flipped bit": {flipped, "chunk 2 (bytes 32 to 47)"},
		"truncation":    {sealed.Bytes()[:sealed.Len()-1], "chunk 6 (bytes 96 to 99)"},
		"extension":     {append(append([]byte{}, sealed.Bytes()...), 0), "chunk 6 (bytes 96 to 99)"},
	}
	for name, attack := range attacks {
		err := fspf.DecryptFile(key, c.Path, bytes.NewReader(attack.data), nil, c.Size, c.ChunkSize, "/V1/num")
		var integrity *fspf.IntegrityError
		if !errors.As(err, &integrity) || !strings.Contains(err.Error(), attack.want) || !strings.Contains(err.Error(), "of file /V1/num failed") {
			t.Errorf("%s: %v", name, err)
		}
	}
	changed := append([]byte{}, plain...)
	changed[40] ^= 1
	err := fspf.VerifyAuthenticatedFile(key, c.Path, bytes.NewReader(changed), c.Size, c.ChunkSize, vectors.Hex(t, c.Tags))
	if err == nil || !strings.Contains(err.Error(), "chunk 2 (bytes 32 to 47)") {
		t.Errorf("a changed authenticated byte: %v", err)
	}
}

type metadataCase struct {
	Key, Context, Sealed, Tag, Kind, Volume string
	Generation                              int64
	Regions                                 [][2]string
	Entries                                 []struct {
		Path, Type, Protection, Key, Blob, Tags, Target, Digest string
		Mode                                                    uint32
		Size                                                    int64
		UID                                                     int `json:"uid"`
		GID                                                     int `json:"gid"`
		Xattrs                                                  map[string]string
	}
}

func TestMetadataIsReadAsTheEngineSealedIt(t *testing.T) {
	var cases []metadataCase
	vectors.Load(t, "metadata.json", &cases)
	if len(cases) != 2 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		sealed, key, tag := vectors.Hex(t, c.Sealed), vectors.Hex(t, c.Key), vectors.Hex(t, c.Tag)
		manifest, err := fspf.Unseal(sealed, key, vectors.Hex(t, c.Context), "vector", tag)
		if err != nil {
			t.Fatal(err)
		}
		if manifest.Kind != c.Kind || manifest.Volume != c.Volume || manifest.Generation != c.Generation {
			t.Errorf("%s: kind, volume or generation differ: %+v", c.Kind, manifest)
		}
		if len(manifest.Regions) != len(c.Regions) || len(manifest.Entries) != len(c.Entries) {
			t.Fatalf("%s: %d regions, %d entries", c.Kind, len(manifest.Regions), len(manifest.Entries))
		}
		for i, region := range c.Regions {
			if manifest.Regions[i] != (fspf.Region{Path: region[0], Protection: region[1]}) {
				t.Errorf("region %d differs", i)
			}
		}
		for i, want := range c.Entries {
			got := manifest.Entries[i]
			same := got.Path == want.Path && got.Type == want.Type && got.Protection == want.Protection &&
				got.Mode == want.Mode && got.Blob == want.Blob && got.Target == want.Target &&
				got.UID == want.UID && got.GID == want.GID && len(got.Xattrs) == len(want.Xattrs) &&
				hex.EncodeToString(got.Key) == want.Key && hex.EncodeToString(got.Tags) == want.Tags &&
				hex.EncodeToString(got.Digest) == want.Digest && (got.Type != "file" || got.Size == want.Size)
			for name, value := range want.Xattrs {
				same = same && hex.EncodeToString(got.Xattrs[name]) == value
			}
			if !same {
				t.Errorf("%s entry %s: %+v, the engine %+v", c.Kind, want.Path, got, want)
			}
		}
		// The same file under another context, another key or another tag is refused by name.
		refusals := map[string]error{}
		_, refusals["tag mismatch"] = fspf.Unseal(sealed, key, vectors.Hex(t, c.Context), "vector", make([]byte, 16))
		_, refusals["wrong key, or the file was changed"] = fspf.Unseal(sealed, key, []byte("other"), "vector", nil)
		flipped := append([]byte{}, sealed...)
		flipped[40] ^= 1
		_, refusals["wrong key, or the file was changed "] = fspf.Unseal(flipped, key, vectors.Hex(t, c.Context), "vector", nil)
		for want, err := range refusals {
			if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
				t.Errorf("%s: expected %q, got %v", c.Kind, want, err)
			}
		}
	}
}

// A Go-sealed volume state is read back, and refused under another generation (the Python side reads
// what Go writes in tests/runtime/test_vectors.py, through the harness).
func TestSealedVolumeStatesAreBoundToTheirGeneration(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	manifest := &fspf.Manifest{Kind: "volume", ChunkSize: fspf.DefaultChunkSize, Volume: "V1", Generation: 3,
		Entries: []fspf.Entry{{Path: "/num", Type: "file", Protection: fspf.ProtectionEncrypt, Mode: 0o600, Size: 2, Key: key, Blob: "ab"}}}
	sealed, tag, err := fspf.Seal(manifest, key, fspf.VolumeContext("V1", 3))
	if err != nil {
		t.Fatal(err)
	}
	back, err := fspf.Unseal(sealed, key, fspf.VolumeContext("V1", 3), "state", tag)
	if err != nil || back.Entries[0].Blob != "ab" || back.Generation != 3 {
		t.Fatalf("%v %+v", err, back)
	}
	if _, err := fspf.Unseal(sealed, key, fspf.VolumeContext("V1", 2), "state", tag); err == nil {
		t.Error("a state opened as another generation's")
	}
}

type fixedAnchor struct{ state *fspf.AnchorState }

func (a *fixedAnchor) Current(string) (*fspf.AnchorState, error) { return a.state, nil }
func (a *fixedAnchor) CompareAndSwap(volume string, expected *fspf.AnchorState, next fspf.AnchorState) error {
	if !a.state.Equal(expected) {
		return &fspf.AnchorConflictError{Message: "conflict"}
	}
	a.state = &next
	return nil
}

type volumeVector struct {
	Name, Key, Tag string
	Generation     int64
	Files          []struct {
		Path, Content string
		Mode          uint32
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(to, strings.TrimPrefix(path, from))
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAVolumeTheEngineCommittedOpensAndCommitsAgain(t *testing.T) {
	var v volumeVector
	vectors.Load(t, "volume/anchor.json", &v)
	storage, plain := t.TempDir(), t.TempDir()
	copyTree(t, filepath.Join(vectors.Dir(), "volume", "storage"), storage)
	anchor := &fixedAnchor{&fspf.AnchorState{Generation: v.Generation, Tag: vectors.Hex(t, v.Tag)}}
	volume, err := fspf.OpenVolume(storage, plain, v.Name, vectors.Hex(t, v.Key), anchor, "/V1")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range v.Files {
		location := filepath.Join(plain, file.Path)
		info, err := os.Lstat(location)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case file.Content == "dir":
			if !info.IsDir() || uint32(info.Mode().Perm()) != file.Mode {
				t.Errorf("%s: %v", file.Path, info.Mode())
			}
		case strings.HasPrefix(file.Content, "->"):
			if target, _ := os.Readlink(location); target != file.Content[2:] {
				t.Errorf("%s points to %s", file.Path, target)
			}
		default:
			var size int
			for _, digit := range file.Content {
				size = size*10 + int(digit-'0')
			}
			data, _ := os.ReadFile(location)
			if !bytes.Equal(data, vectors.Pattern(size)) || uint32(info.Mode().Perm()) != file.Mode {
				t.Errorf("%s: content or mode %v differ", file.Path, info.Mode())
			}
		}
	}
	// Unchanged: nothing to commit. Changed: the next generation, and the old blobs of unchanged files kept.
	if state, err := volume.Commit(); err != nil || state.Generation != v.Generation {
		t.Fatalf("an unchanged volume committed: %v %v", state, err)
	}
	if err := os.WriteFile(filepath.Join(plain, "num"), []byte("43"), 0o600); err != nil {
		t.Fatal(err)
	}
	state, err := volume.Commit()
	if err != nil || state.Generation != v.Generation+1 {
		t.Fatalf("%v %v", state, err)
	}
	reopened, err := fspf.OpenVolume(storage, t.TempDir(), v.Name, vectors.Hex(t, v.Key), anchor, "/V1")
	if err != nil || reopened.Generation() != v.Generation+1 {
		t.Fatalf("reopened: %v", err)
	}
	// The engine's state file, put back, is a rollback.
	copyTree(t, filepath.Join(vectors.Dir(), "volume", "storage"), storage)
	entries, _ := os.ReadDir(storage)
	for _, entry := range entries {
		if strings.HasPrefix(entry.Name(), "state.2.") {
			os.Remove(filepath.Join(storage, entry.Name()))
		}
	}
	_, err = fspf.OpenVolume(storage, t.TempDir(), v.Name, vectors.Hex(t, v.Key), anchor, "/V1")
	var rollback *fspf.RollbackError
	if !errors.As(err, &rollback) || !strings.Contains(err.Error(), "committed state 2 is missing") {
		t.Errorf("a rolled-back volume: %v", err)
	}
}
