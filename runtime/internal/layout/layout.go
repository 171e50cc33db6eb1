// Package layout names where things lie inside a confidential image. Its home is the engine's
// engine/layout.py; these constants are its Go half, and the shared test vectors
// (tests/fixtures/runtime-vectors/layout.json, written from the Python module) prove the two agree.
package layout

const (
	// RuntimeDir is the runtime's own directory: authenticated as a whole, reserved.
	RuntimeDir = "/sconify"
	// RuntimeEntrypoint is the confidential image's entrypoint: this runtime.
	RuntimeEntrypoint = RuntimeDir + "/bin/sconify-run"
	// MeasurementPlan is what the runtime measures (program, regions, heap, stack).
	MeasurementPlan = RuntimeDir + "/measure.json"
	// CasPin is the CA certificate of the image's CAS: the runtime trusts nothing else.
	CasPin = RuntimeDir + "/cas-ca.pem"
	// VolumeStorage holds each volume's ciphertext, <dir>/<volume name>.
	VolumeStorage = RuntimeDir + "/volumes"
	// FspfDir holds the protection metadata of the image's protected regions and their encrypted files.
	FspfDir = "/fspf"
	// FspfMetadata is the sealed metadata.
	FspfMetadata = FspfDir + "/fs.fspf"
	// FspfData holds the encrypted files' blobs.
	FspfData = FspfDir + "/data"
	// KubernetesToken is where a confidential pod finds its projected service-account token for the CAS.
	KubernetesToken = "/var/run/secrets/sconify.io/token"
)
