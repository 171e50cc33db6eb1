"""pulumi-sconify: confidential stateful services from one Pulumi program.

The distribution has three layers, each a subpackage, importing only downwards:

- :mod:`pulumi_sconify.engine` — the open engine (policy, file-system protection, images, CAS, runtime,
  charts, the ``sconify`` command). It never imports Pulumi, so the runtime that goes into confidential
  images carries nothing of the build machine.
- :mod:`pulumi_sconify.provider` — what serves Pulumi: the resource providers over the engine.
- :mod:`pulumi_sconify.components` — the Pulumi component resources a program composes.

The public Pulumi classes are re-exported here, imported on first use (so that using the engine alone
never imports Pulumi).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pulumi_sconify.engine.version import __version__

if (
    TYPE_CHECKING
):  # the same names, typed and re-exported for type checkers; at run time imported on first use
    from pulumi_sconify.components import (
        AksCluster as AksCluster,
        AksClusterArgs as AksClusterArgs,
        AzureDatabaseNetwork as AzureDatabaseNetwork,
        AzurePostgres as AzurePostgres,
        AzurePostgresArgs as AzurePostgresArgs,
        CasDeployment as CasDeployment,
        CasDeploymentArgs as CasDeploymentArgs,
        ConfidentialStatefulService as ConfidentialStatefulService,
        ConfidentialStatefulServiceArgs as ConfidentialStatefulServiceArgs,
        DockerfileImage as DockerfileImage,
        DockerfileImageArgs as DockerfileImageArgs,
        EncryptedVolume as EncryptedVolume,
        EncryptedVolumeArgs as EncryptedVolumeArgs,
        ExternalCas as ExternalCas,
        ExternalCasArgs as ExternalCasArgs,
        InClusterPostgres as InClusterPostgres,
        InClusterPostgresArgs as InClusterPostgresArgs,
        MinikubeCluster as MinikubeCluster,
        MinikubeClusterArgs as MinikubeClusterArgs,
        Placement as Placement,
        PostgresStore as PostgresStore,
        StorageProfile as StorageProfile,
        VolumeArgs as VolumeArgs,
    )
    from pulumi_sconify.provider.resources import (
        CasImage as CasImage,
        CasKeys as CasKeys,
        CasRecoveryKey as CasRecoveryKey,
        CasSession as CasSession,
        CreatorIdentity as CreatorIdentity,
        SconifiedImage as SconifiedImage,
    )

_RESOURCES = ("CasImage", "CasKeys", "CasRecoveryKey", "CasSession", "CreatorIdentity", "SconifiedImage")
_COMPONENTS = (
    "AksCluster",
    "AksClusterArgs",
    "AzureDatabaseNetwork",
    "AzurePostgres",
    "AzurePostgresArgs",
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
    "InClusterPostgres",
    "InClusterPostgresArgs",
    "MinikubeCluster",
    "MinikubeClusterArgs",
    "Placement",
    "PostgresStore",
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
