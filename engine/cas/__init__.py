"""The Configuration and Attestation Service, in four rooms that import downwards only:

- ``server``: the front — the service's rules, its HTTP server, load bounds, ``cas serve``'s options;
- ``intake``: attestation evidence, nonces and the credentials an attestation grants;
- ``state``: the durable store and what keeps it honest, restorable and bounded;
- ``clients``: identities and the clients of both APIs.

The face: the names a caller outside the CAS needs, loaded when first used (the server needs Twisted, the
clients httpx: importing one does not import the other).
"""

from __future__ import annotations

from ..faces import lazy_face

_FACE = {
    "CasClient": "clients.client",
    "ClientIdentity": "clients.identity",
    "create_client_identity": "clients.identity",
    "load_client_identity": "clients.identity",
    "upload_latest": "clients.upload",
    "Store": "state.store",
    "serve": "server.server",
    "serve_command": "server.options",
}
__all__ = list(_FACE)

__getattr__ = lazy_face(__name__, _FACE)
