"""``CasImage``: the open engine's CAS as a container image, built onto a base image with Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from ...engine.cli.cas import default_serve_command
from ...engine.image.cas_image import CasImageOptions, build_cas_image
from ...engine.image.oci import DEFAULT_PLATFORM, ImageError, Platform
from ...engine.image.output import pinned
from ...engine.image.reference import ImageReferenceError, parse_reference
from ...engine.image.registry import RegistryError
from ...engine.image.transport import open_source
from ...engine.version import __version__
from .base import (
    PROVIDER_VERSION,
    Changes,
    CheckFailure,
    CheckResult,
    CreateResult,
    ReportsProgress,
    ResourceLogic,
    UpdateResult,
    changed,
    inputs_of,
    is_unknown,
    required,
)
from .image import INSECURE_REGISTRIES, PLATFORM, REGISTRY_AUTH, registry_options
from .sdk import SconifyResource
from .spec import STRING, Property, ResourceSpec

SPEC = ResourceSpec(
    "CasImage",
    "The open engine's CAS as a container image (`sconify cas serve` as entrypoint), built onto a base "
    "image with Python, pushed to `target` and pinned by digest. The base tag is resolved at check, so a "
    "moved tag shows in a preview; a new version of this package rebuilds the image.",
    inputs={
        "base": Property(
            STRING,
            "A base image with Python 3.11+ (`python:3.12-slim`); a change of its digest updates.",
            required=True,
        ),
        "target": Property(STRING, "Where the CAS image is pushed.", required=True),
        "registry_auth": REGISTRY_AUTH,
        "insecure_registries": INSECURE_REGISTRIES,
        "platform": PLATFORM,
        "provider_version": Property(
            STRING,
            "The version of the provider's behaviour (set by the provider); a new one rebuilds.",
            internal=True,
        ),
    },
    outputs={
        "image": Property(STRING, "The image, `registry/repo@sha256:...`."),
        "base_digest": Property(
            STRING, "The base's manifest digest as resolved at the last check.", made_at_check=True
        ),
        "engine_version": Property(STRING, "The version of this package whose CAS the image holds."),
    },
)

DEFAULTS: dict[str, Any] = {
    "insecure_registries": [],
    "platform": DEFAULT_PLATFORM,
    "provider_version": PROVIDER_VERSION,
}


class CasImageProvider(ReportsProgress, ResourceLogic):
    """Resolves the base at check (a moved base tag shows in a preview) and builds on create/update."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news = {**DEFAULTS, **inputs_of(news), "engine_version": __version__}
        failures = required(news, ["base", "target"])
        for field in ("base", "target"):
            value = news.get(field)
            if isinstance(value, str) and value and not is_unknown(value):
                try:
                    parse_reference(value)
                except ImageReferenceError as error:
                    failures.append(CheckFailure(field, str(error)))
        base = news.get("base")
        if not failures and isinstance(base, str) and not is_unknown(base):
            try:
                with (
                    registry_options(news) as registry,
                    open_source(parse_reference(base), registry) as source,
                ):
                    resolved = source.resolve(Platform.parse(str(news["platform"])))
                    news["base_digest"] = resolved.manifest_digest  # a moved tag shows as a change
            except (ImageError, RegistryError, ImageReferenceError) as error:
                failures.append(CheckFailure("base", f"cannot resolve: {error}"))
        return CheckResult(news, failures)

    def changes(self, olds: dict[str, Any], news: dict[str, Any]) -> Changes:
        # The base counts by its digest (resolved at check); a new engine version rebuilds the image, the
        # CAS in it being this package's code.
        compared = [key for key in SPEC.inputs if key != "base"]
        return Changes(updates=changed(olds, news, ["base_digest", "engine_version", *compared]))

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._build(props)
        return CreateResult(id=outs["image"], outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._build(news))

    def _build(self, props: dict[str, Any]) -> dict[str, Any]:
        with registry_options(props) as registry:
            image = build_cas_image(
                CasImageOptions(
                    base=parse_reference(str(props["base"])),
                    base_digest=props.get("base_digest") or None,
                    destination=parse_reference(str(props["target"])),
                    command=tuple(default_serve_command()),
                    platform=Platform.parse(str(props["platform"])),
                    registry=registry,
                ),
                self.progress,
            )
        return {**inputs_of(props), "image": pinned(image)}


class CasImage(SconifyResource):
    """The CAS image (``sconify cas serve`` as entrypoint), pushed to ``target`` and pinned by digest."""

    image: pulumi.Output[str]
    """The image, ``registry/repo@sha256:...``."""
    base_digest: pulumi.Output[str]
    """The base image's manifest digest as resolved at the last check; the build refuses another."""

    def __init__(
        self,
        resource_name: str,
        *,
        base: pulumi.Input[str],
        target: pulumi.Input[str],
        registry_auth: pulumi.Input[str] | None = None,
        insecure_registries: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        platform: pulumi.Input[str] = DEFAULT_PLATFORM,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            SPEC,
            resource_name,
            {
                "base": base,
                "target": target,
                "registry_auth": pulumi.Output.secret(registry_auth) if registry_auth is not None else None,
                "insecure_registries": insecure_registries or [],
                "platform": platform,
                "provider_version": PROVIDER_VERSION,
                "image": None,
                "base_digest": None,
                "engine_version": None,
            },
            opts,
        )
