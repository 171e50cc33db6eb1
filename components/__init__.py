"""Pulumi component resources that compose a confidential stateful service.

Components hold no cryptography and speak no HTTP: they wire the resources of
:mod:`pulumi_sconify.provider.resources` and the Kubernetes, Azure and command providers together.
Type tokens are ``sconify:index:<Name>``.

- :class:`ConfidentialStatefulService` — native image in, confidential workload with volumes out;
- :class:`EncryptedVolume` — the claim holding one policy volume's ciphertext;
- :class:`CasDeployment` / :class:`ExternalCas` — where services attest;
- :class:`InClusterPostgres` / :class:`AzurePostgres` — the CAS's database (dev / production), giving a
  :class:`PostgresStore`;
- :class:`MinikubeCluster` / :class:`AksCluster` — the dev and production platforms;
- :class:`DockerfileImage` — the native image, built locally from a Dockerfile.
"""

from .aks import AksCluster, AksClusterArgs
from .azure_postgres import AzureDatabaseNetwork, AzurePostgres, AzurePostgresArgs
from .cas import (
    CasDeployment,
    CasDeploymentArgs,
    CasEndpoint,
    ExternalCas,
    ExternalCasArgs,
)
from .cluster import KubernetesCluster, Placement, StorageProfile
from .minikube import MinikubeCluster, MinikubeClusterArgs
from .native_image import DockerfileImage, DockerfileImageArgs
from .postgres import InClusterPostgres, InClusterPostgresArgs, PostgresStore
from .service import ConfidentialStatefulService, ConfidentialStatefulServiceArgs, VolumeArgs
from .volume import EncryptedVolume, EncryptedVolumeArgs

__all__ = [
    "AksCluster",
    "AksClusterArgs",
    "AzureDatabaseNetwork",
    "AzurePostgres",
    "AzurePostgresArgs",
    "CasDeployment",
    "CasDeploymentArgs",
    "CasEndpoint",
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
    "KubernetesCluster",
    "MinikubeCluster",
    "MinikubeClusterArgs",
    "Placement",
    "PostgresStore",
    "StorageProfile",
    "VolumeArgs",
]
