"""Uploading sessions as their owners do: the one place where an update names its predecessor.

The CAS accepts an update only when it names the active version's hash as ``predecessor`` (SCONE's rule), so
every uploader — ``sconify image``, ``sconify session create|update``, the Pulumi ``CasSession`` — reads the
active version and chains to it here.
"""

from __future__ import annotations

import dataclasses

from ...errors import CasError
from ...policy import Session, namespace_session, render_session
from .client import CasClient


def active_version(client: CasClient, name: str) -> tuple[str, str] | None:
    """``(text, hash)`` of the session's active version, or None when it does not exist (or this identity
    may not read it)."""
    try:
        return client.read_session(name)
    except CasError as error:
        if error.status == 404:
            return None
        raise


def upload(client: CasClient, session: Session, predecessor: str | None) -> tuple[Session, str]:
    """Post ``session`` as the successor of ``predecessor`` (None: a new session); returns what was posted
    and the hash the CAS gave it."""
    chained = dataclasses.replace(session, predecessor=predecessor)
    return chained, client.post_session(render_session(chained))


def upload_latest(client: CasClient, session: Session) -> tuple[Session, str]:
    """Create ``session``, or update it with the active version as predecessor."""
    current = active_version(client, session.name)
    return upload(client, session, current[1] if current else None)


def ensure_namespace(client: CasClient, namespace: str) -> bool:
    """Create the namespace session unless it exists; True when it was created."""
    if active_version(client, namespace) is not None:
        return False
    upload(client, namespace_session(namespace), None)
    return True
