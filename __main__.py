"""The counter service of SCONE's "sconify a stateful service" example, confidential, from one program.

One program, one stack per environment: ``dev`` on minikube (Pulumi.dev.yaml), ``aks`` on Azure
(Pulumi.aks.yaml). ``pulumi up`` builds the native image from ``examples/counter``, brings up the cluster
and a CAS in it, sconifies the image, uploads its policy, creates the encrypted volume and runs the
counter. See README.md, "Deploy with Pulumi".
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from pulumi_sconify import (
    AksCluster,
    AksClusterArgs,
    AzurePostgres,
    AzurePostgresArgs,
    CasDeployment,
    CasDeploymentArgs,
    ConfidentialStatefulService,
    ConfidentialStatefulServiceArgs,
    DockerfileImage,
    DockerfileImageArgs,
    ExternalCas,
    ExternalCasArgs,
    InClusterPostgres,
    InClusterPostgresArgs,
    MinikubeCluster,
    MinikubeClusterArgs,
    PostgresStore,
    VolumeArgs,
)
from pulumi_sconify.components.aks import PCRS_NEEDED
from pulumi_sconify.components.cas import CasEndpoint
from pulumi_sconify.components.cluster import KubernetesCluster
from pulumi_sconify.components.native_image import require_dockerfile
from pulumi_sconify.engine.policy import DEFAULT_KUBERNETES_ISSUER
from pulumi_sconify.provider.resources import CasImage

config = pulumi.Config()
COUNTER = require_dockerfile(Path("examples/counter"))  # checked before anything is declared
stack = pulumi.get_stack()
platform = config.require("platform")
engine = config.get("engine") or "open"
if engine != "open":
    raise ValueError(f"engine {engine!r}: this version drives the open engine only (engine: open)")

cluster: KubernetesCluster
if platform == "minikube":
    cluster = MinikubeCluster(
        "cluster",
        MinikubeClusterArgs(
            profile=config.get("minikubeProfile") or f"sconify-{stack}",
            driver=config.get("minikubeDriver") or "docker",
        ),
    )
elif platform == "aks":
    cluster = AksCluster(
        "cluster",
        AksClusterArgs(
            location=pulumi.Config("azure-native").require("location"),
            confidential_pool=config.get("confidentialPool") or "cvm",
            confidential_vm_size=config.get("confidentialVmSize") or "",
            confidential_node_count=config.get_int("confidentialNodeCount") or 1,
        ),
    )
else:
    raise ValueError(f"platform {platform!r}: expected minikube or aks")

in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
cas: CasEndpoint
if config.get("casAddress"):
    if config.get("casCa") is not None:  # its name in 0.2
        pulumi.log.warn("config casCa is deprecated; use casCaCertificate")
    cas = ExternalCas(
        "cas",
        ExternalCasArgs(
            address=config.require("casAddress"),
            ca_certificate=config.get_secret("casCaCertificate") or config.require_secret("casCa"),
        ),
    )
else:
    cas_image = (
        config.get("casImage")
        or CasImage(
            "cas-image",
            base=config.get("casBaseImage") or "docker.io/library/python:3.12-slim",
            target=pulumi.Output.concat(cluster.registry, "/sconify/cas:", stack),
            registry_auth=cluster.registry_auth,
            insecure_registries=cluster.insecure_registries,
        ).image
    )
    issuer = config.get("kubernetesIssuer") or DEFAULT_KUBERNETES_ISSUER
    # The CAS's state (docs/cas.md#stores): SQLite on its claim (one pod), or PostgreSQL — in the cluster,
    # Azure's zone-redundant flexible server (the AKS default), or a database given by URL — with replicas.
    store_kind = config.get("casStore") or ("azure" if isinstance(cluster, AksCluster) else "sqlite")
    store: PostgresStore | None = None
    if store_kind == "in-cluster":
        store = InClusterPostgres(
            "cas-store", InClusterPostgresArgs(placement=cluster.placement), opts=in_cluster
        ).store
    elif store_kind == "azure":
        if not isinstance(cluster, AksCluster):
            raise ValueError("casStore azure: needs the aks platform (Azure's PostgreSQL in its network)")
        store = AzurePostgres(
            "cas-store",
            AzurePostgresArgs(
                network=cluster.database_network, protect=config.get_bool("protectVolumes") or False
            ),
        ).store
    elif store_kind.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(
            url=store_kind,
            password=config.require_secret("casStorePassword"),
            ca_certificate=config.get("casStoreCa"),
        )
    elif store_kind != "sqlite":
        raise ValueError(
            f"casStore {store_kind!r}: expected sqlite, in-cluster, azure or a postgresql:// URL"
        )
    replicas = config.get_int("casReplicas") or 0
    # The owner's public key (`sconify cas recovery-key create`); without one Pulumi makes the key pair.
    recovery_key = config.get("casRecoveryKey")
    # Owners' identities (key hashes) granted room beyond the pool self-made identities share.
    granted = [str(key) for key in config.get_object("casGrantedIdentities") or []]
    if isinstance(cluster, MinikubeCluster):
        exposure = CasDeploymentArgs(
            image=cas_image,
            external_host=cluster.node_address,
            kubernetes_issuer=issuer,
            store=store,
            replicas=replicas,
            recovery_public_key=recovery_key,
            granted_identities=list(granted),
        )
    else:
        label = config.get("casDnsLabel") or f"{pulumi.get_project()}-{stack}-cas"
        location = pulumi.Config("azure-native").require("location")
        exposure = CasDeploymentArgs(
            image=cas_image,
            external_host=f"{label}.{location}.cloudapp.azure.com",
            service_type="LoadBalancer",
            service_annotations={"service.beta.kubernetes.io/azure-dns-label-name": label},
            storage_class="managed-csi",
            placement=cluster.placement,
            kubernetes_issuer=issuer,
            protect=config.get_bool("protectVolumes") or False,  # the CAS's keys decrypt every volume
            store=store,
            replicas=replicas,
            recovery_public_key=recovery_key,
            granted_identities=list(granted),
        )
    cas = CasDeployment("cas", exposure, opts=in_cluster)
    pulumi.export("casImage", cas_image)  # it carries `sconify`: the nodes' PCRs are read with it

native = DockerfileImage(
    "counter",
    DockerfileImageArgs(
        context=COUNTER,
        registry=cluster.registry,
        registry_auth=cluster.registry_auth,
        insecure_registry=bool(cluster.insecure_registries),
        builder=config.get("builder") or "docker",
    ),
)
pulumi.export("platform", platform)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("casAddress", cas.address)
pulumi.export("casCaCertificate", cas.ca_certificate)
if isinstance(cas, CasDeployment) and cas.recovery_private_key is not None:
    # Secret. Keep a copy offline: `pulumi stack output casRecoveryKey --show-secrets` (docs/cas.md).
    pulumi.export("casRecoveryKey", cas.recovery_private_key)

# On confidential VMs the keys go only to a pod whose VM proves (vTPM, AMD or Intel) it booted with the
# nodes' PCRs, which can be read only once the nodes run: without `cvmPcrs`, `up` brings up the cluster and
# the CAS, and the counter follows once they are set (README: "Pinning the confidential nodes' PCRs").
on_confidential_vms = isinstance(cluster, AksCluster) and bool(cluster.placement.device_resources)
cvm_pcrs = config.get_object("cvmPcrs") if on_confidential_vms else None
if on_confidential_vms and cvm_pcrs is None:
    pulumi.log.warn(PCRS_NEEDED)
else:
    counter = ConfidentialStatefulService(
        "counter",
        ConfidentialStatefulServiceArgs(
            native_image=native.image,
            target=pulumi.Output.concat(cluster.registry, "/sconify/counter:", stack),
            command=config.get("command") or "python3 /code/app.py",
            cas=cas,
            namespace=config.get("casNamespace") or f"counter-{stack}",
            service="counter",
            session="counter-session",
            dirs=["/code"],
            volumes=[VolumeArgs("V1", "/V1", size=config.get("volumeSize") or "1Gi")],
            tolerate=config.get_object("tolerate"),
            kubernetes_issuer=config.get("kubernetesIssuer") or DEFAULT_KUBERNETES_ISSUER,
            insecure_software_evidence=config.get_bool("insecureSoftwareEvidence") or False,
            hardware_attestation={"azure-cvm": {"pcrs": cvm_pcrs}} if on_confidential_vms else None,
            workload_type=config.get("workloadType") or "job",
            job_runs=config.get_int("jobRuns") or 3,
            storage=cluster.storage,
            placement=cluster.placement,
            registry_auth=cluster.registry_auth,
            insecure_registries=cluster.insecure_registries,
            protect_volumes=config.get_bool("protectVolumes") or False,
        ),
        opts=in_cluster,
    )
    pulumi.export("image", counter.image)
    pulumi.export("mrenclave", counter.mrenclave)
    pulumi.export("session", counter.session_name)
    pulumi.export("sessionHash", counter.session_hash)
