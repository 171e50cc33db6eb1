"""Pulumi resources over the open engine (dynamic providers): CreatorIdentity, SconifiedImage, CasSession,
CasKeys, CasRecoveryKey, CasImage.

See docs/resources.md for each input's diff behaviour. This is the only part of the engine that imports
Pulumi.
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
