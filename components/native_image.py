"""``DockerfileImage``: the native image, built from a Dockerfile on the machine that runs Pulumi and pushed
to a registry, so that what follows depends on no file of that machine."""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command

from ..engine.errors import ArgumentsError
from .naming import Children

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")
_AUTH_VARIABLE = "SCONIFY_REGISTRY_AUTH"


def context_digest(context: Path) -> str:
    """SHA-256 over the build context's paths, modes and contents: a rebuild follows any change of it."""
    digest = hashlib.sha256(b"sconify-build-context-v1\n")
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        relative = path.relative_to(context).as_posix()
        digest.update(f"{relative}\0{path.stat().st_mode & 0o777:o}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def require_dockerfile(context: Path) -> Path:
    """``context``, if it holds a ``Dockerfile``; else an :class:`ArgumentsError` naming what is missing. A
    program calls it first, so that a wrong path fails before anything is declared."""
    ArgumentsError.raise_for("DockerfileImageArgs", _dockerfile_problems(context))
    return context


def _dockerfile_problems(context: Path) -> list[str]:
    if (context / "Dockerfile").is_file():
        return []
    return [f"context {context}: no Dockerfile there (the build context of a DockerfileImage)"]


BUILDERS = ("docker", "podman")
"""The commands that can build and push a native image."""


@dataclass(frozen=True, kw_only=True)
class DockerfileImageArgs:
    context: Path
    """The build context (a directory with a ``Dockerfile``)."""
    registry: pulumi.Input[str]
    """Where the image is pushed (``host[:port]``, e.g. ``cluster.registry``): the sconifier reads it from
    there by digest, so a later ``pulumi preview`` or ``up`` on another machine needs no file of this one."""
    builder: str = "docker"
    """``docker`` or ``podman``: whichever builds images on this machine."""
    registry_auth: pulumi.Input[str] | None = None
    """A Docker ``config.json`` for the push (``cluster.registry_auth``). Secret. Without it the builder's
    own login is used."""
    insecure_registry: bool = False
    """The registry speaks plain HTTP (minikube's registry add-on). podman is told so; docker must list the
    registry under ``insecure-registries`` in its daemon's configuration."""

    def __post_init__(self) -> None:
        problems = _dockerfile_problems(self.context)
        if self.builder not in BUILDERS:
            problems.append(f"builder {self.builder!r}: expected docker or podman")
        ArgumentsError.raise_for("DockerfileImageArgs", problems)


def build_script(builder: str, context: Path, tag: str, insecure: bool, authenticated: bool) -> str:
    """The shell script that builds ``tag``, pushes it and prints it pinned: ``repo@sha256:...``."""
    repository = tag.rsplit(":", 1)[0]
    lines = ["set -eu"]
    auth: list[str] = []
    if authenticated:
        # The credentials reach the builder through a private file that lives as long as the script.
        lines += [
            "auth_dir=$(mktemp -d)",
            "trap 'rm -rf \"$auth_dir\"' EXIT",
            f'printf %s "${_AUTH_VARIABLE}" > "$auth_dir/config.json"',
        ]
        auth = ["--authfile", '"$auth_dir/config.json"'] if builder == "podman" else []
        if builder == "docker":
            lines.append('export DOCKER_CONFIG="$auth_dir"')
    lines.append(shlex.join([builder, "build", "--quiet", "--tag", tag, str(context)]) + " >/dev/null")
    if builder == "podman":
        tls = ["--tls-verify=false"] if insecure else []
        lines += [
            "digest_file=$(mktemp)",
            " ".join(
                [builder, "push", "--quiet", *tls, *auth, "--digestfile", '"$digest_file"', shlex.quote(tag)]
            ),
            f'printf "%s@%s\\n" {shlex.quote(repository)} "$(cat "$digest_file")"',
            'rm -f "$digest_file"',
        ]
    else:
        lines += [
            shlex.join([builder, "push", "--quiet", tag]) + " >/dev/null",
            # The registry's digest of what was pushed, among the digests the image has in any registry.
            shlex.join(
                [builder, "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", tag]
            )
            + f" | grep -m1 '^{repository}@'",
        ]
    return "\n".join(lines)


class DockerfileImage(pulumi.ComponentResource):
    """Builds the image, pushes it to ``registry`` as ``sconify-native/<name>:<context digest>`` and gives
    it pinned by digest. The tag carries the context's digest, so a change to the app shows in ``pulumi
    preview`` as a new native image for :class:`SconifiedImage`; an unchanged context builds nothing."""

    image: pulumi.Output[str]
    """``registry/sconify-native/<name>@sha256:...`` once pushed."""
    context_digest: str

    def __init__(
        self, resource_name: str, args: DockerfileImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not _NAME.fullmatch(resource_name):
            raise ArgumentsError(
                "DockerfileImage",
                [f"{resource_name!r}: a DNS label names a DockerfileImage (it names the image)"],
            )
        super().__init__("sconify:index:DockerfileImage", resource_name, None, opts)
        children = Children(self, resource_name)
        self.context_digest = context_digest(args.context)
        auth = args.registry_auth
        authenticated = auth is not None
        script = pulumi.Output.from_input(args.registry).apply(
            lambda registry: build_script(
                args.builder,
                args.context,
                f"{registry}/sconify-native/{resource_name}:{self.context_digest[:16]}",
                args.insecure_registry,
                authenticated,
            )
        )
        built = command.local.Command(
            children.name("build"),
            create=script,
            environment={_AUTH_VARIABLE: pulumi.Output.secret(auth)} if auth is not None else None,
            triggers=[self.context_digest, args.registry],
            logging=command.local.Logging.STDOUT,
            opts=children.options("build"),
        )
        self.image = built.stdout.apply(str.strip)
        self.register_outputs({"image": self.image})
