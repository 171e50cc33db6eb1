package measure_test

import (
	"encoding/hex"
	"testing"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/measure"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/vectors"
)

// The measurement over rows whose paths test canonical JSON (quotes, control characters, DEL, beyond
// ASCII and the BMP, bytes that are not UTF-8) is the engine's.
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
		}
		got, err := measure.Measurement(c.Binary, rows, c.Heap, c.Stack)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.Measurement {
			t.Errorf("rows %v: measured %s, the engine %s", rows, got, c.Measurement)
		}
	}
}
