"""The runtime confidential images carry: one static binary per architecture, built from ``runtime/`` (Go).

It needs nothing from the image — no interpreter, no C library, no shell — so any Linux image of these
architectures can be sconified: a ``scratch`` image with one Go binary as well as Debian's PostgreSQL.
``.ci/build-runtime`` builds it reproducibly (static, ``-trimpath``, no build id, the toolchain pinned in
``runtime/go.mod``) into ``bin/`` beside this module, and the wheel carries those files, so users of the
package need no Go toolchain. The same sources give the same bytes, so the same measurement.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SconifyError

ARCHITECTURES = {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
"""An image's architecture (OCI's name, or the machine's) to the runtime binary built for it."""
BINARIES = Path(__file__).resolve().parent / "bin"


class RuntimeMissingError(SconifyError):
    """The runtime for an architecture is not there: an unsupported architecture, or a checkout whose
    runtime was not built."""


def runtime_binary(architecture: str) -> Path:
    """The runtime binary for images of ``architecture``."""
    built = ARCHITECTURES.get(architecture)
    if built is None:
        supported = ", ".join(sorted(set(ARCHITECTURES.values())))
        raise RuntimeMissingError(f"architecture {architecture!r}: the runtime is built for {supported}")
    binary = BINARIES / f"sconify-run-{built}"
    if not binary.is_file():
        raise RuntimeMissingError(
            f"the runtime for {built} is not built ({binary} is missing): run .ci/build-runtime in the "
            "checkout, or install the wheel, which carries it"
        )
    return binary
