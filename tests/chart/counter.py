"""The counter service as `sconify image --json` describes it, for the chart tests."""

from __future__ import annotations

from typing import Any

from pulumi_sconify.engine.chart import ServiceSpec, service_from_sconifier_json

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
