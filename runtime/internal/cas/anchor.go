package cas

import (
	"encoding/hex"
	"fmt"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
)

// VolumeAnchor is the CAS as a volume's freshness anchor, through an attested Session (whose credential
// covers the volumes of that service only).
type VolumeAnchor struct{ Session *Session }

// Current is the volume's committed state in the CAS; nil if never committed.
func (a VolumeAnchor) Current(volume string) (*fspf.AnchorState, error) {
	body, err := a.Session.VolumeRequest("GET", volume, nil)
	if err != nil {
		return nil, err
	}
	text, ok := body["tag"].(string)
	if !ok {
		return nil, nil
	}
	tag, err := hex.DecodeString(text)
	generation, isNumber := body["generation"].(float64)
	if err != nil || !isNumber {
		return nil, &Error{200, "the CAS's volume state is malformed"}
	}
	return &fspf.AnchorState{Generation: int64(generation), Tag: tag}, nil
}

func stateJSON(state *fspf.AnchorState) map[string]any {
	if state == nil {
		return map[string]any{"generation": 0, "tag": nil}
	}
	return map[string]any{"generation": state.Generation, "tag": hex.EncodeToString(state.Tag)}
}

// CompareAndSwap swaps; when its answer is lost, the volume's state says whether it happened (read for
// the session's patience). Another current state is an *fspf.AnchorConflictError.
func (a VolumeAnchor) CompareAndSwap(volume string, expected *fspf.AnchorState, next fspf.AnchorState) error {
	body := map[string]any{"expected": stateJSON(expected), "new": stateJSON(&next)}
	deadline := a.Session.Deadline()
	for {
		_, err := a.Session.VolumeRequest("POST", volume, body)
		if err == nil {
			return nil
		}
		casError, ok := err.(*Error)
		if ok && casError.Status == 409 {
			return &fspf.AnchorConflictError{Message: fmt.Sprintf("volume %s: %s", volume, casError.Reason)}
		}
		if !ok || casError.Status != 0 || a.Session.Past(deadline) {
			return err
		}
		current, err := a.Current(volume) // retried while the CAS is away
		if err != nil {
			return err
		}
		if current.Equal(&next) {
			return nil // the lost answer was a success
		}
		if !current.Equal(expected) {
			return &fspf.AnchorConflictError{Message: fmt.Sprintf("volume %s: another state was committed meanwhile", volume)}
		}
	}
}
