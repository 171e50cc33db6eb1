"""``EncryptedVolume``: the claim that holds one policy volume's ciphertext."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi

from ..engine.chart.objects import claim_object
from ..engine.errors import ArgumentsError
from .cluster import StorageProfile
from .kubernetes import object_resource
from .naming import Children

VOLUME_ANNOTATION = "sconify.io/volume"
SESSION_ANNOTATION = "sconify.io/session"
QUANTITY = re.compile(r"[1-9][0-9]*(Ki|Mi|Gi|Ti)")


@dataclass(frozen=True, kw_only=True)
class EncryptedVolumeArgs:
    claim_name: str
    """The claim's name: the workload model's ``<fullname>-volume<name>``."""
    volume: str
    """The policy volume (``V1``) whose ciphertext the claim holds: its key and freshness anchor live in
    the CAS, so the claim alone reveals and rolls back nothing."""
    session: str
    """The policy session (``namespace/session``) the volume belongs to."""
    storage: StorageProfile
    """Storage class and access mode of the platform (RWO ``standard`` on minikube, RWX
    ``azurefile-csi`` on AKS)."""
    size: str = "1Gi"
    """The claim's size (``512Mi``, ``1Gi``, ...): the ciphertext is about 0.1% larger than the data."""
    namespace: str = "default"
    """The Kubernetes namespace."""
    labels: dict[str, str] = field(default_factory=dict)
    """Labels of the claim."""
    protect: bool = False
    """Make Pulumi refuse to delete the claim (``protect``): the claim holds the only copy of the
    volume's data, so production stacks set this and lift it on purpose before a destroy."""

    def __post_init__(self) -> None:
        if not QUANTITY.fullmatch(self.size):
            raise ArgumentsError(
                "EncryptedVolumeArgs", [f"size {self.size!r}: expected a whole number with Ki, Mi, Gi or Ti"]
            )


class EncryptedVolume(pulumi.ComponentResource):
    """A persistent volume claim bound to a policy volume (annotated with it, so an operator can tell
    which session's key decrypts it)."""

    claim_name: pulumi.Output[str]
    """The claim's name."""
    volume: str
    """The policy volume the claim holds."""

    def __init__(
        self, resource_name: str, args: EncryptedVolumeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:EncryptedVolume", resource_name, None, opts)
        children = Children(self, resource_name)
        claim = claim_object(
            args.claim_name, args.labels, args.size, [args.storage.access_mode], args.storage.storage_class
        )
        claim["metadata"]["namespace"] = args.namespace
        claim["metadata"]["annotations"] = {VOLUME_ANNOTATION: args.volume, SESSION_ANNOTATION: args.session}
        # protect=None inherits the component's protection (ResourceOptions(protect=True) on it or its
        # parent): the claim holds the only copy of the data.
        resource = object_resource(*children("claim", protect=args.protect or None), claim)
        self.volume = args.volume
        self.claim_name = resource.id.apply(lambda _: args.claim_name)
        self.register_outputs({"claim_name": self.claim_name})
