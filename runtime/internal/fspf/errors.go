// Package fspf reads what the engine's file-system protection (engine/fspf) writes: the sealed metadata,
// authenticated and encrypted files in chunks, the protected regions of an image, and encrypted,
// rollback-protected volumes (which it also writes). The format is docs/fspf.md's; the shared test vectors
// in tests/fixtures/runtime-vectors hold both implementations to it.
//
// Messages name the file, chunk, volume or check that failed, never a key or content, and are worded as
// the engine's: the runtime prints them as its one FATAL line.
package fspf

import "fmt"

// IntegrityError is what an attack looks like: protected data was changed, moved, truncated, deleted or
// rolled back.
type IntegrityError struct{ Message string }

func (e *IntegrityError) Error() string { return e.Message }

// RollbackError is an IntegrityError of a volume not in the state its anchor last committed.
type RollbackError struct{ IntegrityError }

// UsageError is a wrong request (a bad key, a working directory that is not empty).
type UsageError struct{ Message string }

func (e *UsageError) Error() string { return e.Message }

// AnchorConflictError is a compare-and-swap that found another state than the one expected.
type AnchorConflictError struct{ Message string }

func (e *AnchorConflictError) Error() string { return e.Message }

func integrity(format string, args ...any) error {
	return &IntegrityError{fmt.Sprintf(format, args...)}
}

func rollback(format string, args ...any) error {
	return &RollbackError{IntegrityError{fmt.Sprintf(format, args...)}}
}

// chunkFailure is the error for one chunk, worded like SCONE's so that operators recognise it.
func chunkFailure(path string, index, chunkSize, size int64) error {
	first := index * chunkSize
	last := max(first, min(size, first+chunkSize)-1)
	return integrity("Verification of file chunk %d (bytes %d to %d) of file %s failed", index, first, last, path)
}
