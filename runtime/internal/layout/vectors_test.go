package layout_test

import (
	"testing"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/layout"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/vectors"
)

func TestPathsAndNamesAreTheEngines(t *testing.T) {
	var want map[string]any
	vectors.Load(t, "layout.json", &want)
	have := map[string]any{
		"RuntimeDir": layout.RuntimeDir, "RuntimeEntrypoint": layout.RuntimeEntrypoint,
		"MeasurementPlan": layout.MeasurementPlan, "CasPin": layout.CasPin, "VolumeStorage": layout.VolumeStorage,
		"FspfDir": layout.FspfDir, "FspfMetadata": layout.FspfMetadata, "FspfData": layout.FspfData,
		"KubernetesToken": layout.KubernetesToken, "AttestationPort": float64(protocol.AttestationPort),
		"NoncePath": protocol.NoncePath, "AttestPath": protocol.AttestPath,
		"VolumeStatePath": "/v1/volumes/{volume}/state", "SignatureHeader": protocol.SignatureHeader,
	}
	if protocol.VolumeStatePath != "/v1/volumes/%s/state" {
		t.Errorf("VolumeStatePath is %q", protocol.VolumeStatePath)
	}
	for name, value := range have {
		if want[name] != value {
			t.Errorf("%s: the engine says %v, the runtime %v", name, want[name], value)
		}
	}
	kinds := []any{protocol.Kubernetes, protocol.InsecureSoftwareEvidence, protocol.SevSnp, protocol.Tdx, protocol.AzureCvm}
	listed, _ := want["EvidenceKinds"].([]any)
	if len(listed) != len(kinds) {
		t.Fatalf("evidence kinds: the engine has %v", listed)
	}
	for i := range kinds {
		if listed[i] != kinds[i] {
			t.Errorf("evidence kind %d: the engine says %v, the runtime %v", i, listed[i], kinds[i])
		}
	}
	if len(want) != len(have)+1 {
		t.Errorf("the engine's vector has %d names, the runtime checks %d", len(want), len(have)+1)
	}
}
