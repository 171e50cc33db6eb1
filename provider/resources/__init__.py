"""Pulumi resources over the open engine: CreatorIdentity, SconifiedImage, CasSession, CasKeys,
CasRecoveryKey, CasImage — each a spec, its logic (served by the plugin) and its Python class.

See docs/resources.md for each input's diff behaviour. The lowest layer that imports Pulumi: the components
build on it, the plugin serves it.
"""

from .cas_image import CasImage, CasImageProvider
from .cas_keys import CasKeys, CasKeysProvider
from .identity import CreatorIdentity, CreatorIdentityProvider
from .image import SconifiedImage, SconifiedImageProvider
from .recovery_key import CasRecoveryKey, CasRecoveryKeyProvider
from .session import CasSession, CasSessionProvider

__all__ = [
    "CasImage",
    "CasImageProvider",
    "CasKeys",
    "CasKeysProvider",
    "CasRecoveryKey",
    "CasRecoveryKeyProvider",
    "CasSession",
    "CasSessionProvider",
    "CreatorIdentity",
    "CreatorIdentityProvider",
    "SconifiedImage",
    "SconifiedImageProvider",
]
