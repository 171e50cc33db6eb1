"""Errors of the policy model.

Every problem is reported against the *field path* where it was found (``services[0].fspf_key``), and
no message ever contains the value that was found there: a session holds keys and secret values, and
an error message ends up in logs, CI output and Pulumi diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SconifyError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy: where, and what was expected there."""

    path: str
    """Field path in the document, e.g. ``services[0].fspf_key``; ``(document)`` for the whole text."""
    message: str
    """What was expected, never the value that was found."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PolicyError(SconifyError, ValueError):
    """A session policy that could not be parsed or did not validate.

    ``problems`` lists every problem found (validation does not stop at the first one), in document
    order. ``str(error)`` is one line per problem.
    """

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("PolicyError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, path: str, message: str) -> PolicyError:
        return cls([Problem(path, message)])
