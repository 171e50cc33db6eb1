"""What a chart is generated from: one confidential service, as the sconifier describes it.

``sconify image --json`` prints the service's image (by digest), configuration id, CAS address and pin,
and ``mounts``: how the image must be run. :func:`service_from_sconifier_json` reads exactly that, so a
chart can be generated from the sconifier's output alone (``sconify chart``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import SconifyError
from ..policy.model import VOLUME_NAME_RE


class WorkloadType(StrEnum):
    """``--k8s-helm-workload-type``."""

    JOB = "job"
    DEPLOYMENT = "deployment"
    STATEFULSET = "statefulset"
    DAEMONSET = "daemonset"


class MountKind(StrEnum):
    CIPHERTEXT_VOLUME = "ciphertext-volume"
    """The ciphertext of a policy volume: backed by a claim (or an emptyDir), persistent."""
    TMPFS = "tmpfs"
    """Memory: the plaintext of a volume or of an encrypted region never touches a disk."""


@dataclass(frozen=True)
class Mount:
    """One mount a confidential image must be run with: the sconifier says which (``mounts`` of
    ``sconify image --json``), the chart and the components provide them."""

    path: str
    kind: MountKind
    volume: str | None = None
    """For ciphertext volumes: the policy volume's name (``V1``)."""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind.value, "volume": self.volume}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mount:
        return cls(str(data["path"]), MountKind(data["kind"]), data.get("volume"))


class ChartSpecError(SconifyError, ValueError):
    """Sconifier output that cannot become a chart."""


_SERVICE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")


@dataclass(frozen=True)
class ServiceSpec:
    """A confidential service to deploy."""

    service: str
    """The policy's service name; the chart is ``sconify-<service>``. A DNS label (lower case)."""
    image: str
    """The confidential image, by digest."""
    config_id: str
    """``<session>/<service>``: what the runtime asks the CAS for."""
    cas: str
    """The CAS attestation address, ``host[:port]``."""
    mounts: tuple[Mount, ...]
    cas_certificate: str = ""
    """The CAS CA certificate (PEM) the runtime pins; empty when the image carries it."""
    heap: str = ""
    stack: str = ""
    log: str = "7"
    service_account: str = ""
    """The Kubernetes service account the policy pins (``services[].kubernetes``): the pods run as it and
    get its projected token for the CAS. Empty when the policy pins none."""
    cas_audience: str = ""
    """The audience of that token: the CAS's (``sconify-cas:<CA key hash>``)."""

    def __post_init__(self) -> None:
        if not _SERVICE_NAME.fullmatch(self.service):
            raise ChartSpecError(
                "service: a chart needs a DNS label (lower-case letters, digits, -; up to 42)"
            )
        if "@sha256:" not in self.image:
            raise ChartSpecError("image: must be pinned by digest (name@sha256:...)")
        for mount in self.mounts:
            if not mount.path.startswith("/"):
                raise ChartSpecError("mounts: every path must be absolute")
            if mount.kind is MountKind.CIPHERTEXT_VOLUME and not VOLUME_NAME_RE.fullmatch(mount.volume or ""):
                raise ChartSpecError("mounts: a ciphertext volume needs a name of letters and digits")
        paths = [mount.path for mount in self.mounts]
        if len(set(paths)) != len(paths):
            raise ChartSpecError("mounts: the same path appears twice")

    @property
    def volumes(self) -> tuple[str, ...]:
        """The policy volumes, in mount order."""
        return tuple(m.volume for m in self.mounts if m.kind is MountKind.CIPHERTEXT_VOLUME and m.volume)


def service_from_sconifier_json(data: Mapping[str, Any]) -> ServiceSpec:
    """Read the object that ``sconify image --json`` prints."""
    try:
        mounts = tuple(Mount.from_json(m) for m in data.get("mounts", []))
        config_id = str(data["config_id"])
        return ServiceSpec(
            service=config_id.rpartition("/")[2],
            image=str(data["image"]),
            config_id=config_id,
            cas=str(data.get("cas") or ""),
            mounts=mounts,
            cas_certificate=str(data.get("cas_certificate") or ""),
            heap=str(data.get("heap") or ""),
            stack=str(data.get("stack") or ""),
            service_account=str((data.get("kubernetes") or {}).get("service_account") or ""),
            cas_audience=str((data.get("kubernetes") or {}).get("audience") or ""),
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ChartSpecError):
            raise
        raise ChartSpecError(
            f"not the output of sconify image --json ({type(error).__name__}: {error})"
        ) from None
