"""Pulumi resources over the open engine (dynamic providers): CreatorIdentity, SconifiedImage, CasSession.

See docs/resources.md for each input's diff behaviour. This is the only part of the engine that imports
Pulumi.
"""

from .identity import CreatorIdentity, CreatorIdentityProvider
from .image import SconifiedImage, SconifiedImageProvider
from .session import CasSession, CasSessionProvider

__all__ = [
    "CasSession",
    "CasSessionProvider",
    "CreatorIdentity",
    "CreatorIdentityProvider",
    "SconifiedImage",
    "SconifiedImageProvider",
]
