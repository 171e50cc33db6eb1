"""What ``sconify image --json`` prints: the one description of a sconified image that charts, the
Pulumi resource and users all read (``chart.service_from_sconifier_json`` takes it as it is)."""

from __future__ import annotations

from typing import Any

from ..cas.clients.identity import cas_audience
from ..policy import Session, render_session
from .reference import ImageReference, Transport
from .sconify import SconifyOptions, SconifyResult


def pinned(reference: ImageReference) -> str:
    """``host/repo@sha256:...`` for a registry; ``transport:path@sha256:...`` otherwise."""
    if reference.transport is Transport.DOCKER:
        return reference.pinned
    return f"{reference.transport.value}:{reference.path}@{reference.digest}"


def sconifier_output(
    result: SconifyResult, options: SconifyOptions, session: Session, session_hash: str | None = None
) -> dict[str, Any]:
    """The ``--json`` object. It holds the policy, and so the FSPF key: treat it as secret."""
    pinned_identity = session.services[0].kubernetes if session.services else None
    return {
        "image": pinned(result.image),
        "native_image": pinned(result.native),
        "mrenclave": result.mrenclave,
        "fspf_tag": result.fspf_tag,
        "binary": result.binary,
        "session": render_session(session),
        "session_name": session.name,
        "session_hash": session_hash,
        "service": options.service,
        "config_id": options.config_id,
        "cas": options.cas_attestation_address,
        "cas_certificate": options.cas_ca_certificate.decode(),
        "heap": options.heap,
        "stack": options.stack,
        "mounts": [m.to_json() for m in result.mounts],
        "kubernetes": (
            {
                "issuer": pinned_identity.issuer,
                "namespace": pinned_identity.namespace,
                "service_account": pinned_identity.service_account,
                "audience": cas_audience(options.cas_ca_certificate) if options.cas_ca_certificate else "",
            }
            if pinned_identity is not None
            else None
        ),
        "blobs_uploaded": result.blobs_uploaded,
        "blobs_present": result.blobs_present,
    }
