"""Cache keys by request body: a body seen before (queryId aside) skips JSON parsing.

A key is a pure function of the body, so nothing here depends on the revision: a remembered
key only says where to look in the per-revision caches of `sidecar.answers`, which decide
whether there is an answer. Bounded by the bytes of the bodies kept, oldest out first; a body
forgotten is parsed again. A body is remembered only once `pdp.wire.trino.parse` accepted it,
which refuses one naming a key twice, so such a body is never answered from here: it differs
from every remembered one in bytes other than the queryId value."""

from __future__ import annotations

from collections import OrderedDict

from pdp.wire.trino import Key, without_query_id

BODY_BYTES = 32 * 1024 * 1024  # per endpoint and worker: ~50,000 single-check bodies


class BodyKeys:
    def __init__(self, max_bytes: int = BODY_BYTES) -> None:
        self.max_bytes = max_bytes
        # OrderedDict: the oldest leaves in constant time. A dict's first key is found by a
        # scan over the slots its deletions left, until the next resize: with a full cache of
        # single-check bodies, 45 us per new body (measured), more than deciding it.
        self._keys: OrderedDict[bytes, Key] = OrderedDict()
        self._bytes = 0

    def find(self, body: bytes) -> tuple[bytes | None, Key | None]:
        """The body as it is remembered (None: it never is) and its key if known."""
        bare = without_query_id(body)
        return bare, None if bare is None else self._keys.get(bare)

    def remember(self, bare: bytes | None, key: Key | None) -> None:
        if bare is None or key is None or bare in self._keys:
            return
        keys = self._keys
        self._bytes += len(bare)
        while self._bytes > self.max_bytes and keys:
            self._bytes -= len(keys.popitem(last=False)[0])
        keys[bare] = key

    def __len__(self) -> int:
        return len(self._keys)
