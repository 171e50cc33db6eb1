"""The session policy of a sconified image: SCONE's generated structure, plus what the open engine needs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..policy import (
    DEFAULT_TOLERATE,
    AttestationMode,
    KubernetesIdentity,
    Platforms,
    PolicyError,
    Problem,
    Security,
    Session,
    default_environment,
    sconified_session,
    validate_session,
)
from ..vocabulary import INSECURE_SOFTWARE_EVIDENCE


def confidential_session(
    *,
    namespace: str,
    session: str,
    service: str,
    mrenclave: str,
    command: str,
    fspf_key: str,
    fspf_tag: str,
    volumes: Mapping[str, str],
    environment: Mapping[str, str] | None = None,
    tolerate: Sequence[str] = DEFAULT_TOLERATE,
    kubernetes: KubernetesIdentity | None = None,
    insecure_software_evidence: bool = False,
    platforms: Platforms | None = None,
) -> Session:
    """The policy for a sconified service; ``environment`` adds to (and overrides) the defaults.

    The service attests with the Kubernetes workload identity ``kubernetes``, if given; self-reported
    evidence is accepted only when ``insecure_software_evidence`` says so (never by default). With
    ``platforms`` (hardware and its reference values) the policy requires hardware evidence
    (``mode: hardware``), together with the workload's token when ``kubernetes`` is pinned."""
    hardware = platforms is not None and platforms != Platforms()
    if hardware and insecure_software_evidence:
        raise PolicyError(
            [
                Problem(
                    "security.attestation",
                    "hardware evidence and insecure software evidence exclude each other",
                )
            ]
        )
    merged = default_environment()
    merged.update(environment or {})
    tolerated = [t for t in tolerate if t != INSECURE_SOFTWARE_EVIDENCE]
    if insecure_software_evidence:
        tolerated.append(INSECURE_SOFTWARE_EVIDENCE)
    policy = sconified_session(
        namespace=namespace,
        session=session,
        service=service,
        mrenclave=mrenclave,
        command=command,
        fspf_key=fspf_key,
        fspf_tag=fspf_tag,
        volumes=dict(volumes),
        environment=merged,
        tolerate=tuple(dict.fromkeys(tolerated)),
    )
    if hardware:
        assert policy.security is not None and platforms is not None
        attestation = dataclasses.replace(
            policy.security.attestation, mode=AttestationMode.HARDWARE, platforms=platforms
        )
        policy = dataclasses.replace(policy, security=Security(attestation))
    if kubernetes is not None:
        pinned = dataclasses.replace(policy.services[0], kubernetes=kubernetes)
        policy = dataclasses.replace(policy, services=(pinned,))
    return validate_session(policy)
