"""The CLI tests that talk to a CAS use the CAS tests' fixtures."""

from tests.cas.conftest import cas, owner, stranger

__all__ = ["cas", "owner", "stranger"]
