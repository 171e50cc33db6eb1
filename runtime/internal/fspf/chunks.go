package fspf

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"hash"
	"io"
)

// DefaultChunkSize is 64 KiB, as the engine writes.
const DefaultChunkSize = 64 * 1024

// TagSize is AES-GCM's tag.
const TagSize = 16

const (
	protectionEncrypted     = 'E'
	protectionAuthenticated = 'A'
	chunkDomain             = "sconify-fspf-chunk-v1\x00"
)

// ChunkCount is the number of chunks of a file of size bytes: at least one, so an empty file has a tag.
func ChunkCount(size, chunkSize int64) int64 {
	if size <= 0 {
		return 1
	}
	return (size + chunkSize - 1) / chunkSize
}

func chunkNonce(index int64) []byte {
	nonce := make([]byte, 12)
	binary.BigEndian.PutUint64(nonce[4:], uint64(index))
	return nonce
}

// chunkBinding is each chunk's additional data: domain, protection, path, index, size and count, so a
// chunk cannot be reordered, moved to another file, swapped between protections or survive truncation.
func chunkBinding(protection byte, path string, index, size, count int64) []byte {
	b := make([]byte, 0, len(chunkDomain)+1+4+len(path)+24)
	b = append(b, chunkDomain...)
	b = append(b, protection)
	b = binary.BigEndian.AppendUint32(b, uint32(len(path)))
	b = append(b, path...)
	b = binary.BigEndian.AppendUint64(b, uint64(index))
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = binary.BigEndian.AppendUint64(b, uint64(count))
	return b
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, &UsageError{"key: expected 32 bytes"}
	}
	return cipher.NewGCM(block)
}

// DecryptFile verifies (and, with a sink, decrypts) a file the engine encrypted: size bytes of plaintext
// in chunks of ciphertext||tag. It names the first chunk that does not verify, including one missing
// (truncation) or followed by extra bytes (extension); shownAs names the file in errors.
func DecryptFile(key []byte, path string, source io.Reader, sink io.Writer, size, chunkSize int64, shownAs string) error {
	aead, err := newGCM(key)
	if err != nil {
		return err
	}
	count := ChunkCount(size, chunkSize)
	sealed := make([]byte, chunkSize+TagSize)
	plain := make([]byte, 0, chunkSize)
	for index := range count {
		expected := min(chunkSize, size-index*chunkSize) + TagSize
		if _, err := io.ReadFull(source, sealed[:expected]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return chunkFailure(shownAs, index, chunkSize, size)
			}
			return err
		}
		opened, err := aead.Open(plain[:0], chunkNonce(index), sealed[:expected], chunkBinding(protectionEncrypted, path, index, size, count))
		if err != nil {
			return chunkFailure(shownAs, index, chunkSize, size)
		}
		if index == count-1 {
			var extra [1]byte
			if n, _ := io.ReadFull(source, extra[:]); n > 0 {
				return chunkFailure(shownAs, index, chunkSize, size)
			}
		}
		if sink != nil {
			if _, err := sink.Write(opened); err != nil {
				return err
			}
		}
	}
	return nil
}

// EncryptFile encrypts size bytes of source into sink (nil: dropped) as chunks bound to path; tags, if
// given, is updated with each chunk's tag in order. A source shorter than size changed while read.
func EncryptFile(key []byte, path string, source io.Reader, sink io.Writer, size, chunkSize int64, tags hash.Hash) error {
	aead, err := newGCM(key)
	if err != nil {
		return err
	}
	count := ChunkCount(size, chunkSize)
	chunk := make([]byte, chunkSize)
	sealed := make([]byte, 0, chunkSize+TagSize)
	for index := range count {
		length := min(chunkSize, size-index*chunkSize)
		if _, err := io.ReadFull(source, chunk[:length]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return &ChangedWhileReadError{path}
			}
			return err
		}
		sealed = aead.Seal(sealed[:0], chunkNonce(index), chunk[:length], chunkBinding(protectionEncrypted, path, index, size, count))
		if tags != nil {
			tags.Write(sealed[len(sealed)-TagSize:])
		}
		if sink != nil {
			if _, err := sink.Write(sealed); err != nil {
				return err
			}
		}
	}
	return nil
}

// ChangedWhileReadError: a file shrank while it was read (not an attack; the next commit reads it again).
type ChangedWhileReadError struct{ Path string }

func (e *ChangedWhileReadError) Error() string {
	return e.Path + ": file shrank while it was being protected"
}

// VerifyAuthenticatedFile checks a plaintext file against its concatenated chunk tags (GMAC: each chunk
// is additional data), naming the first chunk that differs.
func VerifyAuthenticatedFile(key []byte, path string, source io.Reader, size, chunkSize int64, tags []byte) error {
	aead, err := newGCM(key)
	if err != nil {
		return err
	}
	count := ChunkCount(size, chunkSize)
	if int64(len(tags)) != count*TagSize {
		return chunkFailure(path, 0, chunkSize, size)
	}
	chunk := make([]byte, chunkSize)
	var binding []byte
	for index := range count {
		length := min(chunkSize, size-index*chunkSize)
		if _, err := io.ReadFull(source, chunk[:length]); err != nil {
			return chunkFailure(path, index, chunkSize, size)
		}
		binding = append(chunkBinding(protectionAuthenticated, path, index, size, count), chunk[:length]...)
		actual := aead.Seal(nil, chunkNonce(index), nil, binding)
		if !hmac.Equal(actual, tags[index*TagSize:(index+1)*TagSize]) {
			return chunkFailure(path, index, chunkSize, size)
		}
	}
	var extra [1]byte
	if n, _ := io.ReadFull(source, extra[:]); n > 0 {
		return chunkFailure(path, count-1, chunkSize, size)
	}
	return nil
}
