"""Stored policies as the CAS uses them: a compact view kept with each version, parsed models cached.

**The threat.** Anyone who reaches the attestation port may name any configuration id, and any self-made
identity may store policies of up to 1 MiB. Parsing such a policy takes most of a second and makes a model
of several MiB; an outsider who names large policies in turn would make the CAS parse one per request, on
its event loop, and stall every other client (a health check took 2 to 5 s so).

**What bounds it.**

- A version is stored with its *view* (:func:`attestation_view`): the policy without what only a granted
  runtime needs (commands, environments, injected files, secrets). The view is all that access checks, the
  nonce and the attestation's checks read; it is written at upload (computed off the event loop) as JSON,
  which loads some fifty times faster than the policy's YAML, and only a runtime whose evidence verified
  ever costs the whole policy's parse.
- Nothing is parsed on the event loop: a model that is not cached is :class:`ModelMissing`, which the
  server turns into work for its worker pool (bounded, with a bounded queue: ``429`` beyond it), then runs
  the request again with the model in the cache.
- The caches are bounded by the models' real size in memory (:func:`model_size`), not by their text.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import OrderedDict
from dataclasses import dataclass

from ...policy import Session, parse_session
from ...policy.parse import session_from_data
from ...policy.render import canonical_json, session_to_data

VIEW_CACHE_BYTES = 32 * 1024 * 1024
"""Views kept in memory, by their models' size: every view of a few hundred large policies."""
MODEL_CACHE_BYTES = 64 * 1024 * 1024
"""Whole models kept in memory, by size: read only for runtimes that attested (a 1 MiB policy's model is
some 8 MiB)."""


@dataclass(frozen=True)
class ModelKey:
    """Which model of which version: the compact view, or the whole policy."""

    name: str
    digest: str
    whole: bool


class ModelMissing(Exception):  # noqa: N818 - a signal to the server, not an error
    """The request needs a model that is not in memory: load it off the event loop, then ask again."""

    def __init__(self, key: ModelKey) -> None:
        super().__init__(f"{key.name}@{key.digest[:12]} ({'whole' if key.whole else 'view'}) is not loaded")
        self.key = key


@dataclass(frozen=True)
class Loaded:
    """A model loaded in the worker pool, for the event loop to keep; ``view_text`` is set when the view
    had to be derived from the whole policy (a version stored before views were), to be stored."""

    key: ModelKey
    session: Session
    size: int
    view_text: bytes | None = None


def attestation_view(session: Session) -> Session:
    """What access checks, nonces and attestation decisions read of a policy: everything but the
    commands, environments, working directories, FSPF keys, injected files and secrets, which only a
    runtime that attested receives."""
    return dataclasses.replace(
        session,
        services=tuple(
            dataclasses.replace(
                service, command=None, environment={}, pwd=None, fspf_path=None, fspf_key=None, fspf_tag=None
            )
            for service in session.services
        ),
        images=tuple(dataclasses.replace(image, injection_files=()) for image in session.images),
        secrets=(),
    )


def encode_view(session: Session) -> bytes:
    """The view of ``session`` as stored with its version (canonical JSON)."""
    return canonical_json(session_to_data(attestation_view(session)))


def decode_view(text: bytes) -> Session:
    """A stored view, validated as any policy is."""
    return session_from_data(json.loads(text))


def load_model(key: ModelKey, policy_text: str, view_text: bytes | None) -> Loaded:
    """Parse a stored version into the model ``key`` asks for (in the worker pool: this is the costly
    part)."""
    if key.whole:
        session = parse_session(policy_text)
        return Loaded(key, session, model_size(session))
    if view_text is not None:
        view = decode_view(view_text)
        return Loaded(key, view, model_size(view))
    derived = encode_view(parse_session(policy_text))
    view = decode_view(derived)
    return Loaded(key, view, model_size(view), view_text=derived)


def model_size(root: object) -> int:
    """The bytes a model takes in memory: every object reachable from ``root`` once (dataclasses, tuples,
    lists, dicts, strings and numbers, as the policy model is made of)."""
    seen: set[int] = set()
    pending: list[object] = [root]
    total = 0
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (tuple, list, frozenset, set)):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, field.name) for field in dataclasses.fields(item))
    return total


class ModelCache:
    """Models by version, least recently used evicted beyond ``capacity`` bytes (the one just added stays
    even if it alone is larger: the request that loaded it must find it)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._models: OrderedDict[tuple[str, str], tuple[Session, int]] = OrderedDict()

    def get(self, name: str, digest: str) -> Session | None:
        found = self._models.get((name, digest))
        if found is None:
            return None
        self._models.move_to_end((name, digest))
        return found[0]

    def put(self, name: str, digest: str, session: Session, size: int) -> None:
        previous = self._models.pop((name, digest), None)
        if previous is not None:
            self.size -= previous[1]
        self._models[(name, digest)] = (session, size)
        self.size += size
        while self.size > self.capacity and len(self._models) > 1:
            _, (_, evicted) = self._models.popitem(last=False)
            self.size -= evicted

    def forget(self, name: str) -> None:
        for key in [key for key in self._models if key[0] == name]:
            self.size -= self._models.pop(key)[1]

    def __len__(self) -> int:
        return len(self._models)
