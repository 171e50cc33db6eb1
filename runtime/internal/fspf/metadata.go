package fspf

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// The sealed metadata file (docs/fspf.md):
//
//	header = "SCONIFY-FSPF" (12) format version (u16) kind (u8: 1 image, 2 volume) nonce (12)
//	file   = header AES-256-GCM(key, nonce, manifest JSON, aad = header || context)
//
// The file's last 16 bytes, the GCM tag, name the protected state.
const (
	magic             = "SCONIFY-FSPF"
	formatVersion     = 2
	kindImage         = 1
	kindVolume        = 2
	headerSize        = 12 + 2 + 1 + 12
	MaxMetadataBytes  = 256 * 1024 * 1024
	ProtectionNone    = "not-protected"
	ProtectionAuth    = "authenticated"
	ProtectionEncrypt = "encrypted"
)

// Region: every path at or below Path has Protection, unless a longer region says otherwise.
type Region struct {
	Path       string `json:"path"`
	Protection string `json:"protection"`
}

// Entry is one protected file, directory or symbolic link.
type Entry struct {
	Path       string
	Type       string // file, dir, symlink
	Protection string
	Mode       uint32
	Size       int64
	Key        []byte // the file version's own key
	Blob       string // encrypted files: the ciphertext's name
	Tags       []byte // authenticated files: the concatenated chunk tags
	Target     string // links
	HasTarget  bool
	Digest     []byte // SHA-256 of the content
	UID, GID   int
	Xattrs     map[string][]byte
}

// Manifest is everything a metadata file seals.
type Manifest struct {
	Kind       string
	ChunkSize  int64
	Regions    []Region
	Entries    []Entry
	Volume     string
	Generation int64
}

type entryJSON struct {
	Path       string            `json:"path"`
	Type       string            `json:"type"`
	Protection string            `json:"protection"`
	Mode       uint32            `json:"mode"`
	Size       *int64            `json:"size,omitempty"`
	Key        *string           `json:"key,omitempty"`
	Blob       *string           `json:"blob,omitempty"`
	Tags       string            `json:"tags,omitempty"`
	Target     *string           `json:"target,omitempty"`
	Digest     string            `json:"digest,omitempty"`
	UID        *int              `json:"uid,omitempty"`
	GID        *int              `json:"gid,omitempty"`
	Xattrs     map[string]string `json:"xattrs,omitempty"`
}

type manifestJSON struct {
	Format     int         `json:"format"`
	Kind       string      `json:"kind"`
	ChunkSize  int64       `json:"chunk_size"`
	Regions    []Region    `json:"regions"`
	Entries    []entryJSON `json:"entries"`
	Volume     *string     `json:"volume"`
	Generation *int64      `json:"generation"`
}

// ImageContext is what an image's metadata is bound to.
func ImageContext() []byte { return []byte("image") }

// VolumeContext binds a volume state to its volume's name and generation.
func VolumeContext(volume string, generation int64) []byte {
	b := append([]byte("volume\x00"), volume...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(generation))
}

func unhex(text string) ([]byte, error) { return hex.DecodeString(text) }

func (m *manifestJSON) manifest() (*Manifest, error) {
	if m.Format != 1 && m.Format != 2 {
		return nil, fmt.Errorf("unsupported format")
	}
	out := &Manifest{Kind: m.Kind, ChunkSize: m.ChunkSize, Regions: m.Regions}
	if out.ChunkSize <= 0 {
		return nil, fmt.Errorf("chunk size")
	}
	if m.Volume != nil {
		out.Volume = *m.Volume
	}
	if m.Generation != nil {
		out.Generation = *m.Generation
	}
	for _, e := range m.Entries {
		entry := Entry{Path: e.Path, Type: e.Type, Protection: e.Protection, Mode: e.Mode}
		var err error
		if e.Size != nil {
			entry.Size = *e.Size
		}
		if e.Key != nil {
			if entry.Key, err = unhex(*e.Key); err != nil {
				return nil, err
			}
		}
		if e.Blob != nil {
			entry.Blob = *e.Blob
		}
		if entry.Tags, err = unhex(e.Tags); err != nil {
			return nil, err
		}
		if e.Target != nil {
			entry.Target, entry.HasTarget = *e.Target, true
		}
		if entry.Digest, err = unhex(e.Digest); err != nil {
			return nil, err
		}
		if e.UID != nil {
			entry.UID = *e.UID
		}
		if e.GID != nil {
			entry.GID = *e.GID
		}
		if len(e.Xattrs) > 0 {
			entry.Xattrs = map[string][]byte{}
			for name, value := range e.Xattrs {
				if entry.Xattrs[name], err = unhex(value); err != nil {
					return nil, err
				}
			}
		}
		switch entry.Type {
		case "file", "dir", "symlink":
		default:
			return nil, fmt.Errorf("entry type")
		}
		out.Entries = append(out.Entries, entry)
	}
	return out, nil
}

func manifestToJSON(m *Manifest) ([]byte, error) {
	out := manifestJSON{Format: formatVersion, Kind: m.Kind, ChunkSize: m.ChunkSize, Regions: m.Regions}
	if out.Regions == nil {
		out.Regions = []Region{}
	}
	if m.Kind == "volume" {
		out.Volume, out.Generation = &m.Volume, &m.Generation
	}
	out.Entries = []entryJSON{}
	for i := range m.Entries {
		e := &m.Entries[i]
		j := entryJSON{Path: e.Path, Type: e.Type, Protection: e.Protection, Mode: e.Mode,
			Tags: hex.EncodeToString(e.Tags), Digest: hex.EncodeToString(e.Digest)}
		if e.Type == "file" {
			size, key := e.Size, hex.EncodeToString(e.Key)
			j.Size, j.Key = &size, &key
		}
		if e.Blob != "" {
			j.Blob = &e.Blob
		}
		if e.HasTarget {
			j.Target = &e.Target
		}
		if e.Protection == ProtectionAuth {
			j.UID, j.GID = &e.UID, &e.GID
		}
		if len(e.Xattrs) > 0 {
			j.Xattrs = map[string]string{}
			for name, value := range e.Xattrs {
				j.Xattrs[name] = hex.EncodeToString(value)
			}
		}
		out.Entries = append(out.Entries, j)
	}
	return json.Marshal(out)
}

// StoredTag is the tag a metadata file carries, after checking that it looks like one.
func StoredTag(data []byte, name string) ([]byte, error) {
	if len(data) < headerSize+TagSize || string(data[:len(magic)]) != magic {
		return nil, integrity("Verification of %s failed: not an FSPF metadata file", name)
	}
	return data[len(data)-TagSize:], nil
}

// Unseal opens a metadata file bound to context; with expectedTag, only exactly that state.
func Unseal(data, key, context []byte, name string, expectedTag []byte) (*Manifest, error) {
	tag, err := StoredTag(data, name)
	if err != nil {
		return nil, err
	}
	if expectedTag != nil && !hmac.Equal(tag, expectedTag) {
		return nil, integrity("Verification of %s failed: it is not the protected state the policy names (tag mismatch)", name)
	}
	version := binary.BigEndian.Uint16(data[12:14])
	kind := data[14]
	nonce := data[15:headerSize]
	if version == 1 && kind == kindImage {
		return nil, integrity("Verification of %s failed: format version 1 does not seal owners and extended attributes; protect the image again with this version", name)
	}
	if version != 1 && version != 2 {
		return nil, integrity("Verification of %s failed: unsupported format version %d", name, version)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, &UsageError{"key: expected 32 bytes"}
	}
	aead, _ := cipher.NewGCM(block)
	aad := append(append([]byte{}, data[:headerSize]...), context...)
	plain, err := aead.Open(nil, nonce, data[headerSize:], aad)
	if err != nil {
		return nil, integrity("Verification of %s failed: wrong key, or the file was changed", name)
	}
	var raw manifestJSON
	if err := json.Unmarshal(plain, &raw); err != nil {
		return nil, integrity("Verification of %s failed: metadata not understood", name)
	}
	manifest, err := raw.manifest()
	if err != nil {
		return nil, integrity("Verification of %s failed: metadata not understood", name)
	}
	if (manifest.Kind == "image") != (kind == kindImage) || (manifest.Kind != "image" && manifest.Kind != "volume") {
		return nil, integrity("Verification of %s failed: metadata kind does not match its header", name)
	}
	return manifest, nil
}

// Seal seals a volume manifest under key with a random nonce; returns the file's bytes and its tag.
func Seal(m *Manifest, key, context []byte) ([]byte, []byte, error) {
	plain, err := manifestToJSON(m)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	kind := byte(kindVolume)
	if m.Kind == "image" {
		kind = kindImage
	}
	header := make([]byte, 0, headerSize)
	header = append(header, magic...)
	header = binary.BigEndian.AppendUint16(header, formatVersion)
	header = append(header, kind)
	header = append(header, nonce...)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, &UsageError{"key: expected 32 bytes"}
	}
	aead, _ := cipher.NewGCM(block)
	aad := append(append([]byte{}, header...), context...)
	sealed := aead.Seal(append([]byte{}, header...), nonce, plain, aad)
	return sealed, sealed[len(sealed)-TagSize:], nil
}

// EntryMap indexes the entries by path.
func (m *Manifest) EntryMap() map[string]*Entry {
	out := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		out[m.Entries[i].Path] = &m.Entries[i]
	}
	return out
}

// sortedXattrNames is the sorted list of names in attrs.
func sortedXattrNames(attrs ...map[string][]byte) []string {
	seen := map[string]bool{}
	var names []string
	for _, a := range attrs {
		for name := range a {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names
}
