"""Build the policies that sconification generates.

:func:`sconified_session` produces, from the outputs of sconifying an image, the same policy
structure that SCONE's ``sconify_image`` generates for a service (see the counter example in
``docs/policy.md``): one service bound to one image, its measurement, command, environment and
working directory, the image's FSPF key, tag and path, one volume per ``--volume=NAME:PATH``
mounted by the image, access for the creator only, and the list of tolerated weaknesses — plus what
the open engine adds: the service's Kubernetes workload identity and the hardware it must attest on.
It is the one policy builder: the CLI, the resources and the tests all build through it.
:func:`namespace_session` produces the namespace that holds it.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence

from ..layout import FSPF_METADATA
from ..vocabulary import INSECURE_SOFTWARE_EVIDENCE
from .errors import PolicyError, Problem
from .model import (
    CREATOR,
    AccessPolicy,
    Attestation,
    AttestationMode,
    Image,
    ImageVolume,
    KubernetesIdentity,
    Platforms,
    Security,
    Service,
    Session,
    Volume,
)
from .names import default_session_name, qualified_session_name
from .parse import validate_session

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TOLERATE: tuple[str, ...] = (
    "debug-mode",
    "hyperthreading",
    "insecure-igpu",
    "outdated-tcb",
    "software-hardening-needed",
    "insecure-configuration",
)
"""What SCONE's sconification tolerates by default; production policies should narrow it."""


def default_environment(mode: str = "hw", log_level: str = "7") -> dict[str, str]:
    """The environment sconification gives a service when none is specified."""
    return {"SCONE_MODE": mode, "SCONE_LOG": log_level, "LANG": "C.UTF-8", "PATH": DEFAULT_PATH}


def random_namespace() -> str:
    """A fresh namespace name in sconification's style: ``ns-`` and 13 random digits."""
    return "ns-" + "".join(str(secrets.randbelow(10)) for _ in range(13))


def namespace_session(namespace: str) -> Session:
    """The namespace session: only its creator may read, update it or create sessions inside it."""
    return validate_session(
        Session(
            name=namespace,
            access_policy=AccessPolicy(read=(CREATOR,), update=(CREATOR,), create_sessions=(CREATOR,)),
        )
    )


def sconified_session(
    *,
    namespace: str | None,
    service: str,
    mrenclave: str,
    command: str | Sequence[str],
    fspf_key: str,
    fspf_tag: str,
    session: str | None = None,
    image_name: str | None = None,
    volumes: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    pwd: str = "/",  # noqa: S107 - the working directory, not a password
    fspf_path: str = FSPF_METADATA,
    tolerate: Sequence[str] = DEFAULT_TOLERATE,
    ignore_advisories: str | Sequence[str] | None = "*",
    predecessor: str | None = None,
    kubernetes: KubernetesIdentity | None = None,
    insecure_software_evidence: bool = False,
    platforms: Platforms | None = None,
) -> Session:
    """The session policy for one sconified service.

    ``session`` defaults to ``<service>-session`` and ``image_name`` to ``<service>_image``;
    ``volumes`` maps volume names to their mount paths in the image (``{"V1": "/V1"}``);
    ``environment`` adds to (and overrides) :func:`default_environment`.

    The service attests with the Kubernetes workload identity ``kubernetes``, if given. Self-reported
    evidence, which anyone can make up, is accepted only when ``insecure_software_evidence`` says so —
    never by default, and never through ``tolerate``, which drops it. With ``platforms`` (hardware and its
    reference values) the policy requires hardware evidence (``mode: hardware``), together with the
    workload's token when ``kubernetes`` is pinned.

    The result is validated; a :class:`~.errors.PolicyError` names any bad input by field path.
    """
    hardware = platforms if platforms is not None and platforms != Platforms() else None
    if hardware is not None and insecure_software_evidence:
        raise PolicyError(
            [
                Problem(
                    "security.attestation",
                    "hardware evidence and insecure software evidence exclude each other",
                )
            ]
        )
    volumes = dict(volumes or {})
    session_name = session or default_session_name(service)
    image = image_name or f"{service}_image"
    advisories = ignore_advisories if isinstance(ignore_advisories, str | None) else tuple(ignore_advisories)
    tolerated = [t for t in tolerate if t != INSECURE_SOFTWARE_EVIDENCE]
    if insecure_software_evidence:
        tolerated.append(INSECURE_SOFTWARE_EVIDENCE)
    attestation = Attestation(tolerate=tuple(dict.fromkeys(tolerated)), ignore_advisories=advisories)
    if hardware is not None:
        attestation = dataclasses.replace(attestation, mode=AttestationMode.HARDWARE, platforms=hardware)
    return validate_session(
        Session(
            name=qualified_session_name(namespace, session_name),
            predecessor=predecessor,
            access_policy=AccessPolicy(read=(CREATOR,), update=(CREATOR,)),
            services=(
                Service(
                    name=service,
                    image_name=image,
                    mrenclaves=(mrenclave,),
                    command=command if isinstance(command, str) else tuple(command),
                    environment={**default_environment(), **(environment or {})},
                    pwd=pwd,
                    fspf_path=fspf_path,
                    fspf_key=fspf_key,
                    fspf_tag=fspf_tag,
                    kubernetes=kubernetes,
                ),
            ),
            volumes=tuple(Volume(name) for name in volumes),
            images=(Image(image, tuple(ImageVolume(name, path) for name, path in volumes.items())),),
            security=Security(attestation),
        )
    )
