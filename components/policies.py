"""CrossGuard rules for confidential services (``policy-pack/`` runs them on ``pulumi preview``).

- ``confidential-service-needs-protected-volume``: every sconified image declares at least one policy
  volume, and each has its :class:`EncryptedVolume` claim in the stack — a stateful service whose state
  lives anywhere else has no rollback protection.
- ``no-insecure-attestation-on-aks``: a stack with an AKS cluster accepts no self-reported evidence
  (``insecure-software-evidence``: anyone who reaches the CAS could get the keys) and tolerates no
  ``debug-mode`` (a debuggable TEE can be inspected by the host) in any policy it sconifies or uploads.
- ``hardware-evidence-on-confidential-vms``: a stack whose AKS cluster has a confidential-VM pool gives its
  services' keys only for hardware evidence (``hardware_attestation``): otherwise the pods attest with
  their tokens alone and the confidential VMs protect nothing the CAS relies on.

The checks are plain functions over (type, name, properties), so they are tested without an engine;
:data:`POLICIES` wraps them for ``pulumi_policy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from ..engine.policy import PolicyError, parse_session
from ..engine.policy.builder import DEFAULT_TOLERATE
from ..engine.vocabulary import INSECURE_SOFTWARE_EVIDENCE
from ..provider.resources.image import SPEC as IMAGE_SPEC
from ..provider.resources.session import SPEC as SESSION_SPEC
from .volume import SESSION_ANNOTATION, VOLUME_ANNOTATION

SCONIFIED_IMAGE = IMAGE_SPEC.token
CAS_SESSION = SESSION_SPEC.token
_SPECS = {spec.token: spec for spec in (IMAGE_SPEC, SESSION_SPEC)}
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
AKS = "azure-native:containerservice:ManagedCluster"
DEBUG_MODE = "debug-mode"
INSECURE = INSECURE_SOFTWARE_EVIDENCE


@dataclass(frozen=True)
class Planned:
    """One resource of the stack as a rule sees it."""

    type: str
    name: str
    props: Mapping[str, Any]


def planned(resource_type: str, name: str, props: Mapping[str, Any]) -> Planned:
    """A resource as the pack reads it: the package's own by their Python names (the engine gives
    Pulumi's camelCase; a state of an earlier version, snake_case — both are read)."""
    spec = _SPECS.get(resource_type)
    return Planned(resource_type, name, spec.from_wire(props) if spec else props)


def _claims(resources: Iterable[Planned]) -> set[tuple[str, str]]:
    found = set()
    for resource in resources:
        if resource.type == CLAIM:
            annotations = (resource.props.get("metadata") or {}).get("annotations") or {}
            if VOLUME_ANNOTATION in annotations:
                found.add((str(annotations.get(SESSION_ANNOTATION)), str(annotations[VOLUME_ANNOTATION])))
    return found


def unprotected_services(resources: list[Planned]) -> list[str]:
    """Violations of ``confidential-service-needs-protected-volume``."""
    claims = _claims(resources)
    problems = []
    for image in (r for r in resources if r.type == SCONIFIED_IMAGE):
        volumes = image.props.get("volumes") or {}
        session = f"{image.props.get('namespace')}/{image.props.get('session')}"
        if not volumes:
            problems.append(
                f"{image.name}: the confidential service {session} has no rollback-protected volume"
            )
        for volume in sorted(volumes):
            if (session, volume) not in claims:
                problems.append(f"{image.name}: volume {volume} of {session} has no EncryptedVolume claim")
    return problems


def _session_tolerates(policy: Any) -> tuple[str, ...]:
    if not isinstance(policy, str):
        return ()  # unknown in a preview: the image's inputs say what it will tolerate
    try:
        session = parse_session(policy)
    except PolicyError:
        return ()
    return session.security.attestation.tolerate if session.security else ()


def insecure_attestation_on_aks(resources: list[Planned]) -> list[str]:
    """Violations of ``no-insecure-attestation-on-aks``."""
    if not any(r.type == AKS for r in resources):
        return []
    problems = []
    for resource in resources:
        if resource.type == SCONIFIED_IMAGE:
            tolerate = resource.props.get("tolerate")
            tolerated = DEFAULT_TOLERATE if tolerate is None else tuple(tolerate)
            if resource.props.get("insecure_software_evidence") is True or INSECURE in tolerated:
                problems.append(f"{resource.name}: the policy accepts {INSECURE}")
            if DEBUG_MODE in tolerated:
                default = " (the default; set tolerate without it)" if tolerate is None else ""
                problems.append(f"{resource.name}: the policy tolerates {DEBUG_MODE}{default}")
        elif resource.type == CAS_SESSION:
            uploaded = _session_tolerates(resource.props.get("policy"))
            problems.extend(
                f"{resource.name}: the uploaded policy tolerates {weakness}"
                for weakness in (INSECURE, DEBUG_MODE)
                if weakness in uploaded
            )
    return problems


CVM_SIZE = re.compile(r"Standard_(DC|EC)\d+(as|ads|es|eds)_v[56]")


def _has_confidential_vms(resource: Planned) -> bool:
    pools = resource.props.get("agentPoolProfiles") or resource.props.get("agent_pool_profiles") or []
    return any(
        isinstance(pool, Mapping) and CVM_SIZE.fullmatch(str(pool.get("vmSize") or pool.get("vm_size") or ""))
        for pool in pools
    )


def unattested_confidential_vms(resources: list[Planned]) -> list[str]:
    """Violations of ``hardware-evidence-on-confidential-vms``."""
    if not any(r.type == AKS and _has_confidential_vms(r) for r in resources):
        return []
    return [
        f"{resource.name}: the cluster runs confidential VMs, but the policy accepts no hardware evidence "
        "(set hardware_attestation, e.g. {'azure-cvm': {'pcrs': ...}})"
        for resource in resources
        if resource.type == SCONIFIED_IMAGE and not resource.props.get("hardware_attestation")
    ]


def _stack_policy(
    name: str, description: str, check: Callable[[list[Planned]], list[str]]
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [planned(r.resource_type, r.name, r.props) for r in args.resources]
        for problem in check(resources):
            report_violation(problem, None)

    return StackValidationPolicy(
        name=name,
        description=description,
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate,
    )


POLICIES: list[StackValidationPolicy] = [
    _stack_policy(
        "confidential-service-needs-protected-volume",
        "A confidential stateful service keeps its state in rollback-protected policy volumes with claims.",
        unprotected_services,
    ),
    _stack_policy(
        "no-insecure-attestation-on-aks",
        "Production (AKS) policies accept no self-reported evidence and no debuggable TEE.",
        insecure_attestation_on_aks,
    ),
    _stack_policy(
        "hardware-evidence-on-confidential-vms",
        "On confidential VMs, services' keys are released for hardware evidence only.",
        unattested_confidential_vms,
    ),
]
