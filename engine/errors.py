"""The engine's errors: one base, and the CAS error both sides of its protocol share.

Every error the engine raises on purpose is a :class:`SconifyError` (python-tuf's habit): its message names
the problem — the field, the file, the check that failed — and never a secret, so the CLI prints it as it is
and a Pulumi diagnostic may show it. Each part of the engine has its own subclasses (``PolicyError``,
``FspfError``, ``ImageError``, ...); what is not a ``SconifyError`` is a bug.

Each error carries the exit code the ``sconify`` command ends with when it is not handled
(:attr:`SconifyError.exit_code`): the command line maps errors to exit codes in one place, from here.

This module ships into confidential images with the runtime: standard library only.
"""

from __future__ import annotations

from typing import Any

EXIT_INVALID = 1
"""Refused: the input was read but is not acceptable (a policy that does not validate, evidence that is
refused, a check that failed)."""
EXIT_USAGE = 2
"""The work could not be done as asked: a file missing or unreadable, a wrong argument, a store, key or
address that cannot be used."""


class SconifyError(Exception):
    """Base of every error the engine raises on purpose. ``str(error)`` is safe to show."""

    exit_code: int = EXIT_INVALID
    """What ``sconify`` exits with when this error ends a command."""


class ArgumentsError(SconifyError, ValueError):
    """Arguments that are not acceptable (a component's ``Args``, a resource's inputs): every problem found,
    each naming its field — validation does not stop at the first. A ``ValueError`` too, which is what a
    Python caller expects of a bad argument."""

    exit_code = EXIT_USAGE

    def __init__(self, owner: str, problems: list[str]) -> None:
        super().__init__(f"{owner}: " + "; ".join(problems))
        self.owner = owner
        self.problems = tuple(problems)

    @classmethod
    def raise_for(cls, owner: str, problems: list[str]) -> None:
        """Raise for ``owner`` (the class whose arguments these are) if ``problems`` holds any."""
        if problems:
            raise cls(owner, problems)


class DriftError(SconifyError):
    """What Pulumi would write exists already, or was changed, outside Pulumi (a session another owner
    uploaded, a version made with the CLI): Pulumi does not overwrite it unless told to adopt it."""


class CasError(SconifyError):
    """A CAS refused a request, with its HTTP status — or could not be reached (``status`` 0).

    The CAS raises it to answer (``message`` becomes the body's ``error``, ``extra`` its other fields); its
    clients raise it for an answer they got (``extra`` then holds the rest of the body, e.g. ``problems``)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(f"CAS refused ({status}): {message}" if status else f"CAS unreachable: {message}")
        self.status = status
        self.message = message
        self.extra = extra

    @property
    def reason(self) -> str:
        """The CAS's own words (``message``), without the status."""
        return self.message


class CasNotTrustedError(CasError):
    """A CAS answered, but its TLS certificate did not verify against the CA certificate the client pins:
    the wrong CA was given, or something else answers at that address. Not "unreachable": retrying does not
    help, and the fix is another CA or address."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(0, reason)
        self.args = (
            f"CAS at {address} not trusted: TLS verification failed ({reason}); its certificate is not "
            "signed by the pinned CA certificate, or names another host",
        )


class EvidenceRefusedError(SconifyError):
    """Attestation evidence that is refused: forged, stale, from untrusted hardware, or not what the
    policy asks for. ``check`` names the check that refused it (``signature``, ``chain``, ``tcb``,
    ``measurement``, ``report-data``, ``policy``, ...) so that operators and tests can tell them apart."""

    def __init__(self, message: str, check: str = "policy") -> None:
        super().__init__(message)
        self.check = check
