"""``DockerfileImage``: the native image, built from a Dockerfile on the machine that runs Pulumi."""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")


def context_digest(context: Path) -> str:
    """SHA-256 over the build context's paths, modes and contents: a rebuild follows any change of it."""
    digest = hashlib.sha256(b"sconify-build-context-v1\n")
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        relative = path.relative_to(context).as_posix()
        digest.update(f"{relative}\0{path.stat().st_mode & 0o777:o}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class DockerfileImageArgs:
    context: Path
    """The build context (a directory with a ``Dockerfile``)."""
    builder: str = "docker"
    """``docker`` or ``podman``: whichever builds images on this machine."""
    output_directory: Path = Path(".sconify")
    """Where the image archive is written (one file per content digest)."""

    def __post_init__(self) -> None:
        if self.builder not in ("docker", "podman"):
            raise ValueError(f"builder {self.builder!r}: expected docker or podman")
        if not (self.context / "Dockerfile").is_file():
            raise ValueError(f"{self.context}: no Dockerfile there")


class DockerfileImage(pulumi.ComponentResource):
    """Builds the image and saves it as a ``docker-archive``, which the sconifier reads directly: no
    registry is needed for the native image. The archive's name carries the context's digest, so a
    change to the app shows in ``pulumi preview`` as a new native image for :class:`SconifiedImage`."""

    image: pulumi.Output[str]
    """``docker-archive:<path>`` once built."""
    context_digest: str

    def __init__(
        self, resource_name: str, args: DockerfileImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not _NAME.fullmatch(resource_name):
            raise ValueError(f"{resource_name!r}: a DNS label names a DockerfileImage (it tags the image)")
        super().__init__("sconify:index:DockerfileImage", resource_name, None, opts)
        self.context_digest = context_digest(args.context)
        tag = f"localhost/sconify-native/{resource_name}:{self.context_digest[:16]}"
        # Relative to the project, as Pulumi runs programs and providers from there: the same program
        # gives the same inputs on every machine.
        archive = args.output_directory / f"{resource_name}-{self.context_digest[:16]}.tar"
        build = " && ".join(
            [
                f"mkdir -p {shlex.quote(str(archive.parent))}",
                shlex.join([args.builder, "build", "--tag", tag, str(args.context)]),
                f"rm -f {shlex.quote(str(archive))}",
                shlex.join([args.builder, "save", "--output", str(archive), tag]),
            ]
        )
        built = command.local.Command(
            "build",
            create=build,
            delete=f"rm -f {shlex.quote(str(archive))}",
            triggers=[self.context_digest],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image = built.stdout.apply(lambda _: f"docker-archive:{archive}")
        self.register_outputs({"image": self.image})
