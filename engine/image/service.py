"""The sconify use case, written once: a native image and options in; the confidential image, its session
policy, the description ``sconify image --json`` prints, and its chart out. The ``sconify image`` command and
the Pulumi ``SconifiedImage`` resource both call it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chart import WorkloadType, service_from_sconifier_json, write_chart
from ..policy import DEFAULT_TOLERATE, KubernetesIdentity, Platforms, Session, sconified_session
from .output import sconifier_output
from .sconify import Progress, SconifyOptions, SconifyResult, sconify


@dataclass(frozen=True, kw_only=True)
class ServicePolicy:
    """What the session policy says beyond what the image itself determines."""

    namespace: str
    """The CAS namespace of the session."""
    session: str
    """The session's name inside the namespace."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Added to (and overriding) the default environment."""
    tolerate: Sequence[str] = DEFAULT_TOLERATE
    kubernetes: KubernetesIdentity | None = None
    """The workload identity the service attests with."""
    insecure_software_evidence: bool = False
    platforms: Platforms | None = None
    """Hardware the service must attest on, and its reference values (``mode: hardware``)."""


@dataclass(frozen=True)
class ConfidentialService:
    """A sconified image and the policy that admits it."""

    options: SconifyOptions
    result: SconifyResult
    session: Session

    def output(self, session_hash: str | None = None) -> dict[str, Any]:
        """What ``sconify image --json`` prints (it holds the FSPF key: secret)."""
        return sconifier_output(self.result, self.options, self.session, session_hash)


def sconify_service(
    options: SconifyOptions, policy: ServicePolicy, progress: Progress = lambda _: None
) -> ConfidentialService:
    """Sconify the image and write the policy that admits exactly it."""
    result = sconify(options, progress)
    session = sconified_session(
        namespace=policy.namespace,
        session=policy.session,
        service=options.service,
        mrenclave=result.mrenclave,
        command=options.command,
        fspf_key=options.fspf_key.hex(),
        fspf_tag=result.fspf_tag,
        volumes=dict(options.volumes),
        environment=policy.environment,
        tolerate=policy.tolerate,
        kubernetes=policy.kubernetes,
        insecure_software_evidence=policy.insecure_software_evidence,
        platforms=policy.platforms,
    )
    return ConfidentialService(options, result, session)


def write_service_chart(output: Mapping[str, Any], workload: WorkloadType, directory: Path) -> Path:
    """The service's Helm chart, ``directory/<service>/``. Raises ``ChartSpecError``."""
    return write_chart(service_from_sconifier_json(output), workload, directory)
