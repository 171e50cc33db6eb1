// Package vectors loads the shared test vectors the engine (Python) writes into
// tests/fixtures/runtime-vectors (tests/support/runtime_vectors.py): the runtime's tests read them to prove
// both implementations of one format agree.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the vectors' directory in the checkout.
func Dir() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "..", "tests", "fixtures", "runtime-vectors")
}

// Load decodes one vector file into value.
func Load(t *testing.T, name string, value any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(), name))
	if err != nil {
		t.Fatalf("the shared vectors: %v (written by python -m tests.support.runtime_vectors)", err)
	}
	if err := json.Unmarshal(data, value); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// Hex decodes a vector's hex field.
func Hex(t *testing.T, text string) []byte {
	t.Helper()
	data, err := hex.DecodeString(text)
	if err != nil {
		t.Fatalf("not hex: %q", text)
	}
	return data
}

// Pattern is a vector file's content of size bytes, as tests/support/runtime_vectors.py's pattern().
func Pattern(size int) []byte {
	out := make([]byte, size)
	for i := range out {
		out[i] = byte((i*7 + size) % 256)
	}
	return out
}
