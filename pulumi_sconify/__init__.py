"""pulumi-sconify: confidential stateful services from one Pulumi program.

The distribution has two halves, each a subpackage:

- :mod:`pulumi_sconify.provider` — the open engine (policy, file-system protection, images, CAS,
  runtime, charts) and the Pulumi resource providers over it. The engine never imports Pulumi, so
  the runtime that goes into confidential images carries nothing of the build machine.
- :mod:`pulumi_sconify.components` — the Pulumi component resources a program composes.

The public Pulumi classes are re-exported here, imported on first use (so that using the engine alone
never imports Pulumi).
"""

from importlib import import_module
from typing import Any

from pulumi_sconify.engine.version import __version__

_RESOURCES = ("CasImage", "CasKeys", "CasSession", "CreatorIdentity", "SconifiedImage")
_COMPONENTS = (
    "AksCluster",
    "AksClusterArgs",
    "CasDeployment",
    "CasDeploymentArgs",
    "ConfidentialStatefulService",
    "ConfidentialStatefulServiceArgs",
    "DockerfileImage",
    "DockerfileImageArgs",
    "EncryptedVolume",
    "EncryptedVolumeArgs",
    "ExternalCas",
    "ExternalCasArgs",
    "MinikubeCluster",
    "MinikubeClusterArgs",
    "Placement",
    "StorageProfile",
    "VolumeArgs",
)
_PUBLIC = {
    **dict.fromkeys(_RESOURCES, "pulumi_sconify.provider.resources"),
    **dict.fromkeys(_COMPONENTS, "pulumi_sconify.components"),
}

__all__ = [*_RESOURCES, *_COMPONENTS, "__version__"]  # noqa: PLE0604 - names resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pulumi_sconify' has no attribute {name!r}")
