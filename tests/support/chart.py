"""The counter service as `sconify image --json` describes it, for the chart tests."""

from __future__ import annotations

from typing import Any

from pulumi_sconify.engine.chart import ServiceSpec, WorkloadType, service_from_sconifier_json
from tests.support.paths import FIXTURES

CAS_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n"


def sconifier_output() -> dict[str, Any]:
    return {
        "image": "registry.local:5000/counter-confidential@sha256:" + "3f" * 32,
        "mrenclave": "ab" * 32,
        "fspf_tag": "cd" * 16,
        "session_name": "ns-4027319958162/python-session",
        "config_id": "ns-4027319958162/python-session/python-service",
        "cas": "cas.sconify.svc:18765",
        "cas_certificate": CAS_CERTIFICATE,
        "mounts": [
            {"path": "/sconify/volumes/V1", "kind": "ciphertext-volume", "volume": "V1"},
            {"path": "/V1", "kind": "tmpfs", "volume": "V1"},
            {"path": "/code", "kind": "tmpfs", "volume": None},
        ],
        "kubernetes": {
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "namespace": "default",
            "service_account": "python-service",
            "audience": "sconify-cas:" + "5e" * 32,
        },
    }


def counter() -> ServiceSpec:
    return service_from_sconifier_json(sconifier_output())


GOLDEN = FIXTURES / "chart-golden"


VALUE_COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no-persistence": {"volumev1": {"persistence": {"enabled": False}}},
    "existing-claim": {"volumev1": {"persistence": {"existingClaim": "test-pvc"}}},
    "azurefile": {
        "volumev1": {"persistence": {"storageClass": "azurefile-csi", "accessModes": ["ReadWriteMany"]}}
    },
    "sgx-scone": {"useSGXDevPlugin": "scone"},
    "sgx-intel": {"useSGXDevPlugin": "enabled", "sgxEpcMem": "128Mi", "resources": {"limits": {"cpu": "1"}}},
    "sgx-azure": {
        "useSGXDevPlugin": "azure",
        "nodeSelector": {"agentpool": "sgx"},
        "tolerations": [{"key": "sgx", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "scheduling": {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "confidential", "operator": "In", "values": ["yes"]}]}
                    ]
                }
            }
        }
    },
    "pull-secrets": {"imagePullSecrets": [{"name": "regcred"}], "imagePullPolicy": "Always"},
    "runtime-options": {
        "scone": {
            "printVersion": True,
            "log": "ERROR",
            "heap": "256M",
            "stack": "4M",
            "las": "10.0.0.1:18766",
        },
        "extraEnvVars": [{"name": "HTTP_PROXY", "value": "x"}],
    },
    "no-cas-pin": {"scone": {"casCertificate": ""}},
    "no-workload-identity": {"attestation": {"kubernetes": {"serviceAccount": ""}}},
    "existing-service-account": {"attestation": {"kubernetes": {"createServiceAccount": False}}},
    "service": {"service": {"enabled": True, "type": "NodePort", "port": 8080, "targetPort": 8080}},
}


def applicable(combination: dict[str, Any], workload: WorkloadType) -> bool:
    return not ("service" in combination and workload is WorkloadType.JOB)


COMBINATIONS = [
    (w, name)
    for w in WorkloadType
    for name, overrides in VALUE_COMBINATIONS.items()
    if applicable(overrides, w)
]
