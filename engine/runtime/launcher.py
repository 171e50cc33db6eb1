"""The runtime: what a confidential container runs instead of its program.

1. Measure the image (program, libraries, runtime, plan) and attest to the CAS with that measurement;
   the CAS answers with the service's configuration only if the policy lists it.
2. Verify the image's protected regions against the FSPF key and tag from the CAS, and decrypt the
   encrypted ones into their (memory-backed) paths.
3. Open each volume from its ciphertext mount into its memory-backed path, anchored in the CAS.
4. Run the policy's command — never the container's arguments — with exactly the policy's
   environment and working directory, forwarding signals; commit the volumes every
   ``SCONIFY_COMMIT_INTERVAL`` seconds while it runs, if the policy's environment sets that; then
   commit them once more and exit with the program's exit code.

Every refusal is one ``[SCONIFY|FATAL]`` line on standard error and a non-zero exit, with nothing
committed. Standard library and ``cryptography`` only: this runs on the image's own Python.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CasError, SconifyError
from ..fspf import FspfError, Volume, decrypt_tree
from ..layout import CAS_PIN, VOLUME_STORAGE
from ..version import __version__
from .cas import CasConnection, CasSession, VolumeAnchor, patience_from_environment
from .measure import measure_and_observe

EXIT_REFUSED = 70
COMMIT_INTERVAL = "SCONIFY_COMMIT_INTERVAL"
"""Policy environment variable: seconds between commits of a running program's volumes. It is read from
the policy (the CAS's answer), never from the container, so whoever starts the container cannot turn it
off; the program sees it too."""


class RefusedError(SconifyError):
    """A reason not to run, reported as the one FATAL line."""


def fatal(message: str) -> int:
    print(f"[SCONIFY|FATAL] {message}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


def log(message: str) -> None:
    if os.environ.get("SCONE_LOG", "") not in ("", "0", "ERROR", "FATAL"):
        print(f"[SCONIFY|INFO] {message}", file=sys.stderr, flush=True)


def memory_backed(path: Path) -> bool:
    """Whether ``path`` is a mount point of a memory file system (so plaintext never reaches a disk)."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as mountinfo:  # noqa: PTH123 - no pathlib needed for /proc
            for line in mountinfo:
                fields = line.split()
                separator = fields.index("-")
                if fields[4] == target and fields[separator + 1] in ("tmpfs", "ramfs"):
                    return True
    except (OSError, ValueError):
        return False
    return False


def _require_memory(path: Path, what: str) -> None:
    if not memory_backed(path):
        raise RefusedError(
            f"{path} ({what}) is not a memory-backed mount: plaintext would reach a disk; mount a tmpfs there"
        )


def prepare(root: Path = Path("/")) -> tuple[dict[str, Any], list[Volume]]:
    """Steps 1 to 3: attest, verify and decrypt regions, open volumes. Raises :class:`RefusedError`."""
    config_id = os.environ.get("SCONE_CONFIG_ID", "")
    address = os.environ.get("SCONE_CAS_ADDR", "")
    pin = Path(os.environ.get("SCONE_CAS_CA", CAS_PIN))
    if not config_id or not address:
        raise RefusedError("SCONE_CONFIG_ID and SCONE_CAS_ADDR must be set (the sconifier bakes them in)")
    if os.environ.get("SCONE_VERSION") == "1":
        # SCONE_MODE chooses SCONE's enclave mode (hw, sim, auto); the open engine has no enclave: it
        # attests with the evidence the policy accepts and the node offers, printed once attested.
        mode = os.environ.get("SCONE_MODE") or "auto"
        print(
            f"[SCONIFY] runtime {__version__}, config {config_id}, CAS {address}, "
            f"SCONE_MODE {mode} (open engine), log {os.environ.get('SCONE_LOG', '')}",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    try:
        measurement, observation = measure_and_observe(root)
    except (OSError, ValueError) as error:
        raise RefusedError(f"cannot measure the image: {error}") from None
    hashed = sum(observation.stats[path].st_size for path in observation.digests)
    log(
        f"measurement {measurement} ({len(observation.digests)} files, {hashed / 1e6:.0f} MB, "
        f"{time.monotonic() - started:.3f} s)"
    )
    cas = CasSession(CasConnection(address, pin), config_id, measurement, patience_from_environment())
    try:
        grant = cas.attest()
    except CasError as error:
        raise RefusedError(f"attestation refused: {error.reason}" if error.status else str(error)) from None
    log(f"attested with {cas.evidence_kind} evidence")
    configuration: dict[str, Any] = grant["configuration"]
    fspf = configuration.get("fspf")
    if fspf:
        started = time.monotonic()
        try:
            decrypt_tree(
                root,
                root,
                bytes.fromhex(fspf["key"]),
                bytes.fromhex(fspf["tag"]),
                before_writing=lambda path: _require_memory(path, "encrypted region"),
                observation=observation,  # walked and hashed a moment ago: not again
            )
        except FspfError as error:
            raise RefusedError(str(error)) from None
        log(f"protected regions verified and decrypted ({time.monotonic() - started:.3f} s)")
    anchor = VolumeAnchor(cas)
    volumes = []
    for volume in configuration.get("volumes", []):
        plaintext = root / volume["path"].lstrip("/")
        _require_memory(plaintext, f"volume {volume['name']}")
        started = time.monotonic()
        try:
            volumes.append(
                Volume.open(
                    Path(VOLUME_STORAGE) / volume["name"],
                    plaintext,
                    name=volume["name"],
                    key=bytes.fromhex(volume["key"]),
                    anchor=anchor,
                    mount_path=volume["path"],
                )
            )
        except (FspfError, CasError) as error:
            raise RefusedError(str(error)) from None
        log(
            f"volume {volume['name']} opened at generation {volumes[-1].generation} "
            f"({time.monotonic() - started:.3f} s)"
        )
    return configuration, volumes


class PeriodicCommitError(SconifyError):
    """A commit while the program ran failed in a way that must stop it (a refused or conflicting swap)."""


class CasAwayError(SconifyError):
    """The CAS could not be reached for the runtime's whole patience: this commit did not happen."""


def commit_interval(configuration: dict[str, Any]) -> float | None:
    """The policy's ``SCONIFY_COMMIT_INTERVAL`` in seconds, or None. Raises :class:`RefusedError` when it
    is not a positive number (a policy mistake must not silently mean "never")."""
    text = (configuration.get("environment") or {}).get(COMMIT_INTERVAL)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise RefusedError(f"{COMMIT_INTERVAL} in the policy: expected a positive number of seconds")
    return seconds


def commit_all(volumes: Sequence[Volume]) -> None:
    for volume in volumes:
        try:
            volume.commit()
        except CasError as error:
            if error.status == 0:
                raise CasAwayError(
                    f"volume {volume.name}: not committed, {error} (committed generation "
                    f"{volume.generation} is kept)"
                ) from None
            raise PeriodicCommitError(f"volume {volume.name}: commit failed: {error}") from None
        except FspfError as error:
            raise PeriodicCommitError(f"volume {volume.name}: commit failed: {error}") from None


def run(configuration: dict[str, Any], volumes: Sequence[Volume] = ()) -> int:
    """Step 4: the policy's command, environment and directory; signals forwarded; periodic commits when
    configured; its exit code. Raises :class:`PeriodicCommitError` (after stopping the program)."""
    interval = commit_interval(configuration)
    process = subprocess.Popen(
        configuration["command"],
        env=dict(configuration.get("environment") or {}),
        cwd=configuration.get("pwd") or "/",
    )

    def forward(number: int, _: object) -> None:
        process.send_signal(number)

    for number in (
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(number, forward)
    while True:
        try:
            return process.wait(timeout=interval)
        except subprocess.TimeoutExpired:
            pass
        try:
            commit_all(volumes)
            log(f"volumes committed while running (every {interval:g} s)")
        except PeriodicCommitError:
            # Another writer, or a refusal: stop the program rather than let it write what can no
            # longer be committed.
            process.terminate()
            process.wait()
            raise
        except CasAwayError as error:
            # The CAS is away: the program goes on, and the next interval (or the exit) commits.
            log(f"commit postponed: {error}")
        except OSError as error:
            # A file changed while it was read: not a refusal; the next interval (or the exit) commits.
            log(f"commit postponed: {error}")


def main() -> int:
    try:
        configuration, volumes = prepare()
        commit_interval(configuration)
    except RefusedError as refusal:
        return fatal(str(refusal))
    except OSError as error:  # e.g. a memory mount the container's user may not write
        return fatal(f"{error.filename or 'the image'}: {error.strerror or error}")
    try:
        code = run(configuration, volumes)
    except OSError as error:
        return fatal(f"cannot start {configuration['command'][0]}: {error.strerror}")
    except PeriodicCommitError as error:
        return fatal(str(error))
    started = time.monotonic()
    try:
        commit_all(volumes)
    except (PeriodicCommitError, CasAwayError) as error:
        return fatal(str(error))
    except OSError as error:
        return fatal(f"volumes: commit failed: {error.filename or ''}: {error.strerror or error}")
    if volumes:
        log(f"volumes committed ({time.monotonic() - started:.3f} s)")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
