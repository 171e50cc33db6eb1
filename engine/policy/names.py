"""The names a service's policy derives from its inputs, written once for the CLI, the resources and the
components: a session defaults to ``<service>-session``, lives in its namespace as ``<namespace>/<session>``,
and a runtime asks for its configuration as ``<namespace>/<session>/<service>`` (SCONE's config id)."""

from __future__ import annotations


def default_session_name(service: str) -> str:
    """The session a service's policy is named after when none is given."""
    return f"{service}-session"


def qualified_session_name(namespace: str | None, session: str) -> str:
    """A session's name in the CAS: in its namespace, or on its own when there is none."""
    return f"{namespace}/{session}" if namespace else session


def config_id(namespace: str, session: str, service: str) -> str:
    """What a runtime names to get its service's configuration (``SCONE_CONFIG_ID``)."""
    return f"{qualified_session_name(namespace, session)}/{service}"
