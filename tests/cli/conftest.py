"""The CLI tests that talk to a CAS or a registry use those tests' fixtures."""

from tests.cas.conftest import cas, owner, stranger
from tests.image.conftest import registry, secure_registry

__all__ = ["cas", "owner", "registry", "secure_registry", "stranger"]
