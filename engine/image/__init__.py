"""Images: a native image made confidential (``sconify``, and ``service`` — the use case written once for the
CLI and the Pulumi resource), the CAS's image (``cas_image``), and what both stand on — references, the OCI
format, registries and local layouts, layers and root file systems, the runtime bundle.

The face: the names a caller outside ``image`` needs, loaded when first used (the registry client needs
httpx; a caller that only parses a reference does not load it).
"""

from __future__ import annotations

from ..faces import lazy_face

_FACE = {
    "sconify_service": "service",
    "ServicePolicy": "service",
    "ConfidentialService": "service",
    "write_service_chart": "service",
    "sconify": "sconify",
    "SconifyOptions": "sconify",
    "SconifyResult": "sconify",
    "mounts_for": "sconify",
    "build_cas_image": "cas_image",
    "CasImageOptions": "cas_image",
    "ImageReference": "reference",
    "Transport": "reference",
    "parse_reference": "reference",
    "ImageReferenceError": "reference",
    "Platform": "oci",
    "ImageError": "oci",
    "DEFAULT_PLATFORM": "oci",
    "RegistryOptions": "transport",
    "RegistryError": "registry",
    "pinned": "output",
    "sconifier_output": "output",
}
__all__ = list(_FACE)

__getattr__ = lazy_face(__name__, _FACE)
