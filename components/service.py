"""``ConfidentialStatefulService``: a native image in, a confidential service with encrypted,
rollback-protected volumes running in the cluster out."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from ..engine.cas.clients.identity import cas_audience
from ..engine.chart import ServiceSpec, WorkloadType, fullname, volume_key
from ..engine.chart.objects import kubernetes_objects, labels
from ..engine.errors import ArgumentsError
from ..engine.image.sconify import mounts_for
from ..engine.policy import (
    DEFAULT_KUBERNETES_ISSUER,
    KNOWN_TOLERATIONS,
    VOLUME_NAME_RE,
    VOLUME_NAME_RULE,
    PolicyError,
    config_id,
    default_session_name,
    namespace_session,
    platforms_from_data,
    render_session,
)
from ..engine.vocabulary import INSECURE_SOFTWARE_EVIDENCE
from ..provider.resources import CasSession, CreatorIdentity, SconifiedImage
from .cas import CasEndpoint
from .cluster import Placement, StorageProfile
from .kubernetes import object_resource, pending
from .naming import Children
from .volume import QUANTITY, EncryptedVolume, EncryptedVolumeArgs

PENDING_IMAGE = pending("image") + "@sha256:" + "0" * 64
"""The image in the workload model until the sconified image's digest is known."""
PENDING_AUDIENCE = pending("audience")
"""The token audience (the CAS's) until its CA certificate is known."""
_CAS_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_RELEASE = re.compile(r"[a-z]([-a-z0-9]{0,18}[a-z0-9])?")
"""A component's name: it starts ``<name>-sconify-<service>``, which must be a DNS label."""
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class VolumeArgs:
    """A policy volume: encrypted, integrity- and rollback-protected, persistent."""

    name: str
    """The policy's volume name (``V1``): letters and digits."""
    path: str
    """Where the program sees the plaintext (memory-backed), e.g. ``/V1``."""
    size: str = "1Gi"
    """The size of its claim."""


@dataclass(frozen=True, kw_only=True)
class ConfidentialStatefulServiceArgs:
    native_image: pulumi.Input[str]
    """The native image: ``registry/repo:tag``, ``docker-archive:/path.tar`` or ``oci:/layout:tag``."""
    target: pulumi.Input[str]
    """Where the confidential image is pushed (``registry/repo:tag``); it is deployed by digest."""
    command: pulumi.Input[str]
    """The command the policy runs (never the container's arguments), e.g. ``python3 /code/app.py``."""
    cas: CasEndpoint
    """Where the policy is uploaded and the service attests (:class:`CasDeployment`, :class:`ExternalCas`)."""
    namespace: str
    """The CAS namespace of the session (created unless ``create_cas_namespace`` is false)."""
    service: str = "service"
    """The policy's service name; also names the Kubernetes objects. A DNS label."""
    session: str = ""
    """The session name inside the namespace; ``<service>-session`` when empty."""
    dirs: list[str] = field(default_factory=list)
    """Directories of the image to encrypt (the app's code, e.g. ``/code``)."""
    volumes: list[VolumeArgs] = field(default_factory=list)
    """The policy volumes; one :class:`EncryptedVolume` each."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The program's environment, set by the policy (the container's own environment is ignored)."""
    tolerate: list[str] | None = None
    """The attestation weaknesses the policy tolerates; None for SCONE's defaults, which include
    ``debug-mode`` (fine on minikube, refused on AKS by the policy pack)."""
    kubernetes_issuer: pulumi.Input[str] = DEFAULT_KUBERNETES_ISSUER
    """The cluster's service-account issuer: the pods attest with a token it signed for their own
    service account (``<name>-sconify-<service>``), which the policy pins."""
    insecure_software_evidence: bool = False
    """INSECURE, development only: the CAS also releases the keys on the runtime's own word, which
    anyone who reaches the CAS can give. The policy pack refuses it on AKS."""
    hardware_attestation: Mapping[str, Any] | None = None
    """The hardware the pods must prove they run on, and what it must measure: the session's
    ``security.attestation.platforms`` (docs/attestation.md), e.g. ``{"azure-cvm": {"pcrs": {"7":
    "<64 hex>"}}}``. The policy then requires hardware evidence *and* the pods' token."""
    workload_type: str = "job"
    """``job``, ``deployment`` or ``statefulset``."""
    job_runs: int = 1
    """For ``job``: how many Jobs run one after the other on the same volumes (the seed's demo runs 3)."""
    replicas: int = 1
    """For ``deployment``/``statefulset``; one when there are volumes (a volume has a single writer)."""
    port: int | None = None
    """The port the program listens on: a Service exposes it in the cluster (not for jobs)."""
    resources: Mapping[str, Any] = field(default_factory=dict)
    """The container's resource requests and limits."""
    storage: StorageProfile = field(default_factory=lambda: StorageProfile("", "ReadWriteOnce"))
    """The platform's storage for volume claims (``cluster.storage``)."""
    placement: Placement = field(default_factory=Placement)
    """Where the pods run (``cluster.placement``)."""
    registry_auth: pulumi.Input[str] | None = None
    """A Docker ``config.json`` for pushing the confidential image (``cluster.registry_auth``). Secret."""
    insecure_registries: list[pulumi.Input[str]] = field(default_factory=list)
    """Registries reached over plain HTTP (``cluster.insecure_registries``)."""
    kubernetes_namespace: str = "default"
    """The Kubernetes namespace of the workload and its claims (it names objects at preview time, so it
    is a plain string)."""
    create_kubernetes_namespace: bool = False
    """Create ``kubernetes_namespace`` (leave it to one service when several share a namespace)."""
    identity: CreatorIdentity | None = None
    """The CAS identity that owns the session; a new one is created when None."""
    create_cas_namespace: bool = True
    """Upload the CAS namespace's session; one that exists already (another service's, another stack's) is
    adopted, never deleted."""
    adopt_session: bool = False
    """A session of this name that exists in the CAS (a destroy that kept it, another stack) becomes this
    one's predecessor instead of failing the create. The identity must be allowed to update it."""
    protect_volumes: bool = False
    """Production: Pulumi refuses to delete the volume claims and the session (which holds the volumes'
    keys), and a destroy after lifting the protection keeps the session in the CAS."""

    def __post_init__(self) -> None:
        problems = []
        try:
            WorkloadType(self.workload_type)
        except ValueError:
            problems.append(f"workload_type {self.workload_type!r}: expected job, deployment or statefulset")
        if self.workload_type == "daemonset":
            problems.append("workload_type daemonset: a volume has a single writer, a DaemonSet has many")
        if not _CAS_NAMESPACE.fullmatch(self.namespace):
            problems.append(f"namespace {self.namespace!r}: letters, digits, - and _ (up to 63)")
        if not all(
            hasattr(self.cas, field) for field in ("address", "attestation_address", "ca_certificate")
        ):
            problems.append(
                "cas: expected a CasDeployment or ExternalCas (address, attestation_address, "
                f"ca_certificate), not a {type(self.cas).__name__}"
            )
        if not _DNS_LABEL.fullmatch(self.kubernetes_namespace):
            problems.append(f"kubernetes_namespace {self.kubernetes_namespace!r}: a DNS label")
        if not self.volumes:
            problems.append("volumes: a stateful service needs at least one (its state lives there)")
        seen: dict[str, str] = {}
        for volume in self.volumes:
            if not VOLUME_NAME_RE.fullmatch(volume.name):
                problems.append(f"volume {volume.name!r}: {VOLUME_NAME_RULE}")
            elif volume.name.lower() in seen:
                problems.append(
                    f"volume {volume.name!r}: the same as {seen[volume.name.lower()]!r} but for case "
                    "(volumes name claims, which are lower-case)"
                )
            seen.setdefault(volume.name.lower(), volume.name)
            if not QUANTITY.fullmatch(volume.size):
                problems.append(
                    f"volume {volume.name!r} size {volume.size!r}: a whole number with Ki, Mi, Gi or Ti"
                )
            if not volume.path.startswith("/"):
                problems.append(f"volume {volume.name!r} path {volume.path!r}: an absolute path")
        if self.workload_type == "job" and self.port is not None:
            problems.append(f"port {self.port}: a job has no Service; leave port unset or run a deployment")
        if self.workload_type != "job" and self.job_runs != 1:
            problems.append(f"job_runs {self.job_runs}: only for workload_type job")
        if self.volumes and self.replicas != 1:
            problems.append(
                f"replicas {self.replicas}: a rollback-protected volume has a single writer, so a service "
                "with volumes runs one replica"
            )
        if self.job_runs < 1:
            problems.append("job_runs: at least 1")
        if self.hardware_attestation is not None:
            try:
                platforms_from_data(self.hardware_attestation, "hardware_attestation")
            except PolicyError as error:
                problems.extend(str(problem) for problem in error.problems)
            if self.insecure_software_evidence:
                problems.append("insecure_software_evidence: excluded by hardware_attestation")
        if self.tolerate is not None:
            problems.extend(
                f"tolerate {name!r}: unknown (known: {', '.join(KNOWN_TOLERATIONS)})"
                for name in self.tolerate
                if name not in KNOWN_TOLERATIONS
            )
            if INSECURE_SOFTWARE_EVIDENCE in self.tolerate:
                problems.append(
                    f"tolerate {INSECURE_SOFTWARE_EVIDENCE!r}: set insecure_software_evidence=True instead"
                )
        ArgumentsError.raise_for("ConfidentialStatefulServiceArgs", problems)

    @property
    def session_name(self) -> str:
        return self.session or default_session_name(self.service)


def service_spec(args: ConfidentialStatefulServiceArgs) -> ServiceSpec:
    """The workload model's view of the service, from the component's inputs alone: how the image must
    be run follows from its volumes and directories, so nothing waits for the image to be built."""
    mounts = mounts_for([(v.name, v.path) for v in args.volumes], args.dirs)
    return ServiceSpec(
        service=args.service,
        image=PENDING_IMAGE,
        config_id=config_id(args.namespace, args.session_name, args.service),
        cas=pending("cas"),
        mounts=mounts,
    )


def workload_objects(args: ConfidentialStatefulServiceArgs, release: str) -> list[dict[str, Any]]:
    """The workload and its Service, as the chart would create them; the claims are the volumes'."""
    spec = service_spec(args)
    name = fullname(release, spec.service)
    values: dict[str, Any] = {
        "image": PENDING_IMAGE,
        "replicaCount": args.replicas,
        "useSGXDevPlugin": args.placement.sgx_device_plugin,
        "nodeSelector": args.placement.node_selector,
        "tolerations": args.placement.tolerations,
        "resources": _with_devices(args.resources, args.placement.device_resources),
        "service": {"enabled": args.port is not None}
        | ({"port": args.port, "targetPort": args.port} if args.port is not None else {}),
        "attestation": {"kubernetes": {"serviceAccount": name, "audience": PENDING_AUDIENCE}},
    }
    for volume in args.volumes:
        values[volume_key(volume.name)] = {
            "persistence": {"enabled": True, "existingClaim": f"{name}-{volume_key(volume.name)}"}
        }
    objects = kubernetes_objects(spec, WorkloadType(args.workload_type), values, release, "Pulumi")
    for kubernetes_object in objects:
        kubernetes_object["metadata"]["namespace"] = args.kubernetes_namespace
    return objects


def _with_devices(resources: Mapping[str, Any], devices: Mapping[str, str]) -> dict[str, Any]:
    """The container's resources with the platform's devices (an extended resource is requested by its
    limit; Kubernetes sets the request equal)."""
    merged = copy.deepcopy(dict(resources))
    if devices:
        merged["limits"] = {**merged.get("limits", {}), **devices}
    return merged


class ConfidentialStatefulService(pulumi.ComponentResource):
    """Sconifies the native image, uploads its policy to the CAS, creates one :class:`EncryptedVolume`
    per policy volume and runs the workload — as typed Kubernetes resources built from the chart's
    workload model, so a preview lists each object and its diff.

    The Kubernetes provider is passed through: give it as ``opts=ResourceOptions(providers=[...])``.
    """

    image: pulumi.Output[str]
    """The confidential image, pinned by digest."""
    mrenclave: pulumi.Output[str]
    """The measurement the policy admits."""
    session_name: pulumi.Output[str]
    """The policy session (``namespace/session``)."""
    session_hash: pulumi.Output[str]
    """The hash the CAS reported for the uploaded policy."""
    endpoint: pulumi.Output[str]
    """``host:port`` of the service inside the cluster; empty for jobs and services without a port."""
    volumes: dict[str, EncryptedVolume]

    def __init__(
        self,
        resource_name: str,
        args: ConfidentialStatefulServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if not _RELEASE.fullmatch(resource_name):
            problem = (
                f"name {resource_name!r}: it starts the Kubernetes objects' names "
                "(<name>-sconify-<service>): lower-case letters, digits and -, starting with a letter"
            )
            raise ArgumentsError("ConfidentialStatefulService", [problem])
        objects = workload_objects(args, resource_name)  # validates the service name before anything exists
        super().__init__("sconify:index:ConfidentialStatefulService", resource_name, None, opts)
        children = Children(self, resource_name)
        name = fullname(resource_name, args.service)
        identity = args.identity or CreatorIdentity(
            children.name("identity"), common_name=f"{resource_name}-owner", opts=children.options("identity")
        )

        def cas_session(
            child: str, policy: pulumi.Input[str], delete: bool, adopt: bool, **options: Any
        ) -> CasSession:
            return CasSession(
                children.name(child),
                cas_client_address=args.cas.address,
                cas_ca_certificate=args.cas.ca_certificate,
                identity_certificate=identity.certificate_pem,
                identity_key=identity.private_key_pem,
                policy=policy,
                delete_on_destroy=delete,
                adopt=adopt,
                opts=children.options(child, **options),
            )

        after_namespace: list[pulumi.Resource] = []
        if args.create_cas_namespace:
            # Adopted when it exists (other services and stacks share it), and never deleted with this one.
            namespace_policy = render_session(namespace_session(args.namespace))
            after_namespace.append(cas_session("cas-namespace", namespace_policy, False, True))
        if args.create_kubernetes_namespace:
            after_namespace.append(
                object_resource(
                    *children("kubernetes-namespace"),
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": args.kubernetes_namespace},
                    },
                )
            )
        image = SconifiedImage(
            children.name("image"),
            native_image=args.native_image,
            target=args.target,
            command=args.command,
            session=args.session_name,
            namespace=args.namespace,
            service=args.service,
            dirs=list(args.dirs),
            volumes={volume.name: volume.path for volume in args.volumes},
            env=dict(args.env),
            tolerate=args.tolerate,
            kubernetes={
                "issuer": args.kubernetes_issuer,
                "namespace": args.kubernetes_namespace,
                "service_account": name,
            },
            insecure_software_evidence=args.insecure_software_evidence,
            hardware_attestation=args.hardware_attestation,
            cas_attestation_address=args.cas.attestation_address,
            cas_ca_certificate=args.cas.ca_certificate,
            registry_auth=args.registry_auth,
            insecure_registries=args.insecure_registries,
            workload_type=args.workload_type,
            opts=children.options("image"),
        )
        # The session holds the volumes' keys and freshness: with protect_volumes it is protected and,
        # once unprotected, still kept in the CAS on destroy (docs/components.md says how to delete it).
        session = cas_session(
            "session",
            image.policy,
            not args.protect_volumes,
            args.adopt_session,
            depends_on=after_namespace,
            protect=args.protect_volumes or None,
        )
        self.volumes = {
            volume.name: EncryptedVolume(
                children.name(f"volume-{volume.name.lower()}"),
                EncryptedVolumeArgs(
                    claim_name=f"{name}-{volume_key(volume.name)}",
                    volume=volume.name,
                    session=f"{args.namespace}/{args.session_name}",
                    storage=args.storage,
                    size=volume.size,
                    namespace=args.kubernetes_namespace,
                    labels=labels(resource_name, args.service, "Pulumi"),
                    protect=args.protect_volumes,
                ),
                opts=children.options(f"volume-{volume.name.lower()}", depends_on=after_namespace),
            )
            for volume in args.volumes
        }
        placeholders = {
            PENDING_IMAGE: image.image,
            pending("cas"): args.cas.attestation_address,
            PENDING_AUDIENCE: args.cas.ca_certificate.apply(cas_audience),
        }
        # The workload starts only after its policy is in the CAS and its claims exist.
        ready: list[pulumi.Resource] = [session, *self.volumes.values()]
        for kubernetes_object in objects:
            kind = str(kubernetes_object["kind"]).lower()
            if kind == "job":
                for run in range(1, args.job_runs + 1):
                    job = copy.deepcopy(kubernetes_object)
                    if args.job_runs > 1:
                        job["metadata"]["name"] = f"{job['metadata']['name']}-run-{run}"
                    previous = object_resource(
                        *children(kind if args.job_runs == 1 else f"job-run-{run}", depends_on=list(ready)),
                        job,
                        placeholders,
                    )
                    ready = [previous]  # one run after the other: each continues the last one's count
            else:
                created = object_resource(
                    *children(kind, depends_on=[*ready, *after_namespace]), kubernetes_object, placeholders
                )
                if kind == "serviceaccount":
                    ready = [*ready, created]  # pods are admitted only once their account exists
        self.image = image.image
        self.mrenclave = image.mrenclave
        self.session_name = session.name
        self.session_hash = session.hash
        has_endpoint = args.port is not None and args.workload_type != "job"
        self.endpoint = pulumi.Output.from_input(
            f"{name}.{args.kubernetes_namespace}.svc.cluster.local:{args.port}" if has_endpoint else ""
        )
        self.register_outputs(
            {
                "image": self.image,
                "mrenclave": self.mrenclave,
                "session_name": self.session_name,
                "session_hash": self.session_hash,
                "endpoint": self.endpoint,
            }
        )
