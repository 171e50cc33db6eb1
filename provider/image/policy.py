"""The session policy of a sconified image: SCONE's generated structure, plus what the open engine needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..policy import DEFAULT_TOLERATE, Session, default_environment, sconified_session

SOFTWARE_EVIDENCE = "software-evidence"
"""Toleration the open engine's runtime needs: it attests with self-reported software evidence."""


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
) -> Session:
    """The policy for a sconified service; ``environment`` adds to (and overrides) the defaults."""
    merged = default_environment()
    merged.update(environment or {})
    return sconified_session(
        namespace=namespace,
        session=session,
        service=service,
        mrenclave=mrenclave,
        command=command,
        fspf_key=fspf_key,
        fspf_tag=fspf_tag,
        volumes=dict(volumes),
        environment=merged,
        tolerate=(*dict.fromkeys([*tolerate, SOFTWARE_EVIDENCE]),),
    )
