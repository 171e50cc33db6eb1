"""Where things lie inside a confidential image, and inside the CAS's: the one home of every in-image path.

The sconifier writes these paths, the runtime reads them, fspf and the policy name them, and the chart mounts
volumes there; a path written twice drifts. The runtime (``runtime/``, Go) has its own copy of the paths it
reads, held to these by the shared test vectors (``tests/fixtures/runtime-vectors/layout.json``).
"""

from __future__ import annotations

RUNTIME_DIR = "/sconify"
"""The runtime's own directory: authenticated as a whole, and reserved (an image may not bring one)."""
RUNTIME_ENTRYPOINT = f"{RUNTIME_DIR}/bin/sconify-run"
"""The confidential image's entrypoint: the runtime (one static binary), which starts the program."""
MEASUREMENT_PLAN = f"{RUNTIME_DIR}/measure.json"
"""What the runtime measures (program, regions, heap, stack); inside the measured region itself."""
CAS_PIN = f"{RUNTIME_DIR}/cas-ca.pem"
"""The CA certificate of the image's CAS: the runtime trusts nothing else."""
VOLUME_STORAGE = f"{RUNTIME_DIR}/volumes"
"""Each volume's ciphertext, ``<dir>/<volume name>``: mounted there, never part of the authenticated image."""

FSPF_DIR = "/fspf"
"""The protection metadata of the image's protected regions, and their encrypted files."""
FSPF_METADATA = f"{FSPF_DIR}/fs.fspf"
"""The sealed metadata: the regions, each file's tag, and (for encrypted ones) where its blob lies."""
FSPF_DATA = f"{FSPF_DIR}/data"
"""The encrypted files' blobs."""

KUBERNETES_TOKEN = "/var/run/secrets/sconify.io/token"  # noqa: S105 - a path, not a secret
"""Where a confidential pod finds its projected service-account token for the CAS."""

CAS_LIBRARY = "/opt/sconify/lib"
"""The CAS image: the CAS and its dependencies, for the base image's Python."""
CAS_DATA_DIRECTORY = "/var/lib/sconify-cas"
"""The CAS image: where the CAS's volume is mounted. Its state lives in a directory of its own below: a
volume's root may belong to root (minikube's hostPath provisioner, plain ``-v`` mounts), and the CAS makes
its state directory private (mode 700), which only its owner can."""
CAS_STATE_DIRECTORY = f"{CAS_DATA_DIRECTORY}/state"
"""The CAS image: the CAS's state (``cas serve --data-dir``)."""
CAS_CA_DIRECTORY = "/etc/sconify-cas/ca"
"""The CAS pod: the CA its server certificate is issued from (``cas serve --ca-dir``), from a Secret."""
CAS_RECOVERY_DIRECTORY = "/etc/sconify-cas/recovery"
"""The CAS pod: the recovery public key its master key is sealed to."""
CAS_STORE_CA_DIRECTORY = "/etc/sconify-cas/store-ca"
"""The CAS pod: the root certificates its PostgreSQL server's certificate must chain to."""

RESERVED = (FSPF_DIR, RUNTIME_DIR, "/proc", "/sys", "/dev")
"""Paths an image's own regions, volumes and files may not overlap."""

SYSTEM_DIRECTORIES = ("/dev", "/proc", "/sys")
"""What the kernel and the container runtime mount: never the image's."""
SCRATCH_DIRECTORIES = ("/run", "/tmp", "/var/run", "/var/tmp")  # noqa: S108 - paths in images, named
"""Where programs write what need not last, and container runtimes mount (``/run/.containerenv``, a pod's
``/var/run/secrets``): left unprotected, and made in an image that lacks them (a mount point that appears at
start would be an unexpected entry of the authenticated root)."""
CONTAINER_FILES = ("/etc/hostname", "/etc/hosts", "/etc/mtab", "/etc/resolv.conf")
"""Files podman and the kubelet mount over the image's own, or make when the image has none (``/etc/mtab``):
theirs to vouch for, not the image's."""
