package measure_test

import (
	"encoding/hex"
	"testing"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/measure"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/vectors"
)

// The measurement over entries whose paths test canonical JSON (quotes, control characters, DEL, beyond
// ASCII and the BMP, bytes that are not UTF-8), and over what not everyone may read, is the engine's: the
// rows go in as an observation of a disk would give them, through the runtime's own Rows.
func TestMeasurementsAreTheEngines(t *testing.T) {
	var cases []struct {
		Binary, Heap, Stack, Measurement string
		Rows                             [][]any
	}
	vectors.Load(t, "measurement.json", &cases)
	if len(cases) < 5 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		observation := &fspf.Observation{Stats: map[string]fspf.Stat{}, Links: map[string]string{},
			Digests: map[string][]byte{}, Protections: map[string]string{}}
		rows := make([]any, 0, len(c.Rows))
		for _, row := range c.Rows {
			decoded := make([]any, len(row))
			for i, value := range row {
				switch v := value.(type) {
				case string: // strings are the hex of their bytes
					raw, err := hex.DecodeString(v)
					if err != nil {
						t.Fatal(err)
					}
					decoded[i] = string(raw)
				case float64:
					decoded[i] = int64(v)
				}
			}
			rows = append(rows, decoded)
			path, kind, mode, size, detail := decoded[0].(string), decoded[1].(string), decoded[2].(int64), decoded[3].(int64), decoded[4].(string)
			types := map[string]uint32{"dir": 0o040000, "file": 0o100000, "symlink": 0o120000}
			observation.Stats[path] = fspf.Stat{Mode: types[kind] | uint32(mode), Size: size}
			observation.Protections[path] = fspf.ProtectionAuth
			switch kind {
			case "symlink":
				observation.Links[path] = detail
			case "file":
				observation.Digests[path], _ = hex.DecodeString(detail)
			}
		}
		got, err := measure.Measurement(c.Binary, measure.Rows(observation), c.Heap, c.Stack)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.Measurement {
			t.Errorf("rows %v: measured %s, the engine %s", rows, got, c.Measurement)
		}
	}
}
