"""What every HTTP client of the engine shares: it owns one httpx client and closes it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx


class OwnsHttpClient:
    """Base of classes that own an ``httpx.Client`` in ``_http``; use them as context managers."""

    _http: httpx.Client

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
