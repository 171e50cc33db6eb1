// Package measure recomputes the measurement (mrenclave) of a confidential image from its files, as the
// engine's engine/runtime/measure.py defines it: the lower-case hex SHA-256 of
// "sconify-measurement-v1\n" followed by canonical JSON of
//
//	{"binary": ..., "files": [[path, type, mode, size, sha256-or-link-target], ...], "heap": ..., "stack": ...}
//
// over every entry of the authenticated regions the plan (/sconify/measure.json) names. The plan lies in
// the authenticated /sconify region, so it is measured too.
package measure

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/canonical"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/layout"
)

const domain = "sconify-measurement-v1\n"

// Plan is what the sconifier wrote for the runtime to measure.
type Plan struct {
	Binary, Heap, Stack string
	Regions             []fspf.Region
}

// ReadPlan reads and checks the plan below root.
func ReadPlan(root string) (*Plan, error) {
	malformed := func(what string) error {
		return fmt.Errorf("%s: missing or malformed (%s)", layout.MeasurementPlan, what)
	}
	data, err := os.ReadFile(filepath.Join(root, strings.TrimPrefix(layout.MeasurementPlan, "/")))
	if err != nil {
		return nil, malformed("OSError")
	}
	var raw struct {
		Binary  *string     `json:"binary"`
		Heap    *string     `json:"heap"`
		Stack   *string     `json:"stack"`
		Regions [][2]string `json:"regions"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, malformed("JSONDecodeError")
	}
	if raw.Binary == nil || raw.Heap == nil || raw.Stack == nil || raw.Regions == nil {
		return nil, malformed("KeyError")
	}
	regions := make([]fspf.Region, 0, len(raw.Regions))
	for _, pair := range raw.Regions {
		regions = append(regions, fspf.Region{Path: pair[0], Protection: pair[1]})
	}
	normalised, err := fspf.NormaliseRegions(regions)
	if err != nil {
		return nil, malformed("ValueError")
	}
	return &Plan{Binary: *raw.Binary, Heap: *raw.Heap, Stack: *raw.Stack, Regions: normalised}, nil
}

const (
	othersRead         = 0o004
	othersListAndEnter = 0o005
)

// Rows are [path, type, mode, size, sha256 or target] of each authenticated entry, sorted by path. What not
// everyone may read counts by its metadata only, so that the measurement is the same whoever the runtime runs
// as: a file others may not read has an empty hash, and what lies below a directory others may not both
// list and enter is left out (engine/runtime/measure.py states the rule).
func Rows(o *fspf.Observation) []any {
	paths := make([]string, 0, len(o.Stats))
	for path := range o.Stats {
		if o.Protections[path] == fspf.ProtectionAuth {
			paths = append(paths, path)
		}
	}
	sort.Strings(paths)
	rows := make([]any, 0, len(paths))
	closed := map[string]bool{}
	for _, path := range paths {
		if below(closed, path) {
			continue
		}
		info := o.Stats[path]
		mode := int(info.Mode & 0o7777)
		switch info.Mode & 0o170000 {
		case 0o120000:
			rows = append(rows, []any{path, "symlink", 0o777, 0, o.Links[path]})
		case 0o040000:
			if mode&othersListAndEnter != othersListAndEnter {
				closed[path] = true
			}
			rows = append(rows, []any{path, "dir", mode, 0, ""})
		default:
			digest := hex.EncodeToString(o.Digests[path])
			if mode&othersRead == 0 {
				digest = ""
			}
			rows = append(rows, []any{path, "file", mode, info.Size, digest})
		}
	}
	return rows
}

// below tells whether path lies below one of the closed directories.
func below(closed map[string]bool, path string) bool {
	for parent := filepath.Dir(path); parent != "/" && parent != "."; parent = filepath.Dir(parent) {
		if closed[parent] {
			return true
		}
	}
	return false
}

// Measurement is the measurement for binary over rows.
func Measurement(binary string, rows []any, heap, stack string) (string, error) {
	document, err := canonical.Encode(canonical.Object{"binary": binary, "files": rows, "heap": heap, "stack": stack})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(domain + document))
	return hex.EncodeToString(sum[:]), nil
}

// MeasureAndObserve recomputes the measurement of the image whose root is root, and returns what the
// walk for it saw of the protected regions (so that verification need not read them again).
func MeasureAndObserve(root string) (string, *fspf.Observation, error) {
	plan, err := ReadPlan(root)
	if err != nil {
		return "", nil, err
	}
	observation, err := fspf.Observe(root, plan.Regions)
	if err != nil {
		return "", nil, err
	}
	measurement, err := Measurement(plan.Binary, Rows(observation), plan.Heap, plan.Stack)
	return measurement, observation, err
}
