"""The CrossGuard rules, called directly, on hand-made stacks and on the programs' own stacks."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, StackValidationArgs

from pulumi_sconify.components.policies import (
    AKS,
    CAS_SESSION,
    CLAIM,
    POLICIES,
    SCONIFIED_IMAGE,
    Planned,
    insecure_attestation_on_aks,
    unattested_confidential_vms,
    unprotected_services,
)
from pulumi_sconify.engine.policy import render_session
from pulumi_sconify.engine.policy.builder import sconified_session
from tests.support.pulumi.program_runner import plain
from tests.support.pulumi.programs import STACKS, program_run

IMAGE = {"namespace": "ns", "session": "counter-session", "volumes": {"V1": "/V1"}}


def claim(session: str = "ns/counter-session", volume: str = "V1") -> Planned:
    annotations = {"sconify.io/session": session, "sconify.io/volume": volume}
    return Planned(CLAIM, "claim", {"metadata": {"annotations": annotations}})


def test_a_service_with_its_claim_passes() -> None:
    assert unprotected_services([Planned(SCONIFIED_IMAGE, "image", IMAGE), claim()]) == []


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        ([Planned(SCONIFIED_IMAGE, "image", {**IMAGE, "volumes": {}})], "has no rollback-protected volume"),
        (
            [Planned(SCONIFIED_IMAGE, "image", IMAGE)],
            "volume V1 of ns/counter-session has no EncryptedVolume",
        ),
        ([Planned(SCONIFIED_IMAGE, "image", IMAGE), claim(volume="V2")], "volume V1 of ns/counter-session"),
        ([Planned(SCONIFIED_IMAGE, "image", IMAGE), claim(session="ns/other")], "volume V1"),
    ],
)
def test_a_service_without_a_protected_volume_is_refused(resources: list[Planned], problem: str) -> None:
    problems = unprotected_services(resources)
    assert len(problems) == 1 and problem in problems[0]


def _policy(tolerate: tuple[str, ...], *, insecure_software_evidence: bool = False) -> str:
    return render_session(
        sconified_session(
            namespace="ns",
            service="counter",
            mrenclave="a" * 64,
            command="python3 /code/app.py",
            fspf_key="b" * 64,
            fspf_tag="c" * 32,
            tolerate=tolerate,
            insecure_software_evidence=insecure_software_evidence,
        )
    )


def test_debug_mode_is_refused_only_on_aks() -> None:
    image = Planned(SCONIFIED_IMAGE, "image", IMAGE)  # no tolerate: SCONE's defaults, with debug-mode
    assert insecure_attestation_on_aks([image]) == []
    problems = insecure_attestation_on_aks([Planned(AKS, "cluster", {}), image])
    assert problems == ["image: the policy tolerates debug-mode (the default; set tolerate without it)"]
    narrowed = Planned(SCONIFIED_IMAGE, "image", {**IMAGE, "tolerate": ["hyperthreading"]})
    assert insecure_attestation_on_aks([Planned(AKS, "cluster", {}), narrowed]) == []


def test_insecure_software_evidence_is_refused_only_on_aks() -> None:
    cluster = Planned(AKS, "cluster", {})
    insecure = Planned(
        SCONIFIED_IMAGE,
        "image",
        {**IMAGE, "tolerate": ["hyperthreading"], "insecure_software_evidence": True},
    )
    assert insecure_attestation_on_aks([insecure]) == []
    assert insecure_attestation_on_aks([cluster, insecure]) == [
        "image: the policy accepts insecure-software-evidence"
    ]
    uploaded = Planned(CAS_SESSION, "session", {"policy": _policy((), insecure_software_evidence=True)})
    assert insecure_attestation_on_aks([cluster, uploaded]) == [
        "session: the uploaded policy tolerates insecure-software-evidence"
    ]


def test_an_uploaded_policy_that_tolerates_debug_mode_is_refused_on_aks() -> None:
    cluster = Planned(AKS, "cluster", {})
    debug = Planned(CAS_SESSION, "session", {"policy": _policy(("debug-mode", "hyperthreading"))})
    strict = Planned(CAS_SESSION, "session", {"policy": _policy(("hyperthreading",))})
    unknown = Planned(CAS_SESSION, "session", {"policy": None})
    assert insecure_attestation_on_aks([cluster, debug]) == [
        "session: the uploaded policy tolerates debug-mode"
    ]
    assert insecure_attestation_on_aks([cluster, strict, unknown]) == []


def _stack(program: str, stack: str, changes: dict[str, Any] | None = None) -> list[PolicyResource]:
    resources = []
    for registration in program_run(program, stack).registrations:
        props = plain(registration["inputs"])
        if registration["name"] == "counter-image" and changes:
            props.update(changes)
        options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
        resources.append(
            PolicyResource(
                registration["type"],
                props,
                registration["urn"],
                registration["name"],
                options,
                None,
                None,
                [],
                {},
            )
        )
    return resources


def _violations(resources: list[PolicyResource]) -> list[str]:
    reported: list[str] = []
    for policy in POLICIES:
        policy.validate(StackValidationArgs(resources, None), lambda message, _urn: reported.append(message))
    return reported


@pytest.mark.parametrize(("program", "stack"), STACKS)
def test_the_programs_pass_the_pack(program: str, stack: str) -> None:
    assert _violations(_stack(program, stack)) == []


def test_the_aks_stack_with_default_tolerations_fails_the_pack() -> None:
    violations = _violations(_stack("root", "aks", {"tolerate": None}))
    assert violations == [
        "counter-image: the policy tolerates debug-mode (the default; set tolerate without it)"
    ]


def test_services_on_confidential_vms_must_ask_for_hardware_evidence() -> None:
    cvm = Planned(
        AKS, "cluster", {"agentPoolProfiles": [{"name": "confidential", "vmSize": "Standard_DC4as_v5"}]}
    )
    sgx = Planned(
        AKS, "cluster", {"agentPoolProfiles": [{"name": "confidential", "vmSize": "Standard_DC4s_v3"}]}
    )
    bare = Planned(SCONIFIED_IMAGE, "image", IMAGE)
    pinned = Planned(SCONIFIED_IMAGE, "image", IMAGE | {"hardware_attestation": {"azure-cvm": {"pcrs": {}}}})
    assert unattested_confidential_vms([cvm, bare]) == [
        "image: the cluster runs confidential VMs, but the policy accepts no hardware evidence "
        "(set hardware_attestation, e.g. {'azure-cvm': {'pcrs': ...}})"
    ]
    assert unattested_confidential_vms([cvm, pinned]) == []
    assert unattested_confidential_vms([sgx, bare]) == []
    assert unattested_confidential_vms([bare]) == []


def test_the_aks_stack_without_hardware_evidence_fails_the_pack() -> None:
    violations = _violations(_stack("root", "aks", {"hardware_attestation": None}))
    assert violations == [
        "counter-image: the cluster runs confidential VMs, but the policy accepts no hardware evidence "
        "(set hardware_attestation, e.g. {'azure-cvm': {'pcrs': ...}})"
    ]
