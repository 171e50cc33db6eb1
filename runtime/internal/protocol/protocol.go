// Package protocol is the runtime's half of the attestation protocol between a runtime and the CAS: its
// paths, and the byte strings both sides must compute alike. The engine's half is
// engine/runtime/protocol.py; the shared test vectors (tests/fixtures/runtime-vectors/protocol.json,
// written by the Python side) are checked by both test suites.
package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const (
	NoncePath       = "/v1/attest/nonce"
	AttestPath      = "/v1/attest"
	VolumeStatePath = "/v1/volumes/%s/state"
	// SignatureHeader carries the runtime key's Ed25519 signature (hex) over a volume request.
	SignatureHeader = "sconify-signature"
)

// Evidence kinds and the CAS's attestation port: the engine's vocabulary (engine/vocabulary.py).
const (
	AttestationPort          = 18765
	Kubernetes               = "kubernetes"
	InsecureSoftwareEvidence = "insecure-software-evidence"
	SevSnp                   = "sev-snp"
	Tdx                      = "tdx"
	AzureCvm                 = "azure-cvm"
)

// HardwareKinds are the evidence kinds a TEE gives.
var HardwareKinds = []string{SevSnp, Tdx, AzureCvm}

// EvidenceBinding is the 32 bytes evidence must carry to be bound to this attestation and runtime key.
func EvidenceBinding(nonce []byte, runtimeKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte("sconify-attestation-v1\x00"))
	h.Write(nonce)
	h.Write(runtimeKey)
	return h.Sum(nil)
}

// HardwareReportData is the 64-byte report-data of an SEV-SNP report or TDX quote: the binding, then zeros.
func HardwareReportData(binding []byte) []byte {
	data := make([]byte, 64)
	copy(data, binding)
	return data
}

func hexSha256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// RequestSigningInput is what the runtime key signs for one volume request: the method, the path, the
// body's hash and the credential's hash.
func RequestSigningInput(method, path string, body []byte, credential string) []byte {
	return []byte(strings.Join([]string{
		"sconify-request-v1", method, path, hexSha256(body), hexSha256([]byte(credential)),
	}, "\n"))
}
