"""Frames built for one client, reused for every other client that sends the same batch.

Clients with the same subscriptions, woken by the same messages, pop the same record objects
(the router builds one Record per message and encoding and gives it to all of them), so their
batches are identical: the frame is encoded and compressed once. The key is the identity of the
records plus everything else that shapes the frame (protocol, compression, threshold); an entry
keeps its records alive, so their ids cannot be reused while it is cached.

Bounded by `max_bytes` of cached frames (oldest evicted first): 8 MiB by default.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")


class FrameCache:
    def __init__(self, max_bytes: int = 8 * 1024 * 1024, max_entries: int = 256) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Sequence, list, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get_or_build(self, records: Sequence, shape: Hashable,
                     build: Callable[[Sequence], list[T]], size_of: Callable[[T], int]) -> list[T]:
        key = (shape, tuple(map(id, records)))
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            return entry[1]
        self.misses += 1
        frames = build(records)
        # The entry keeps its records alive too: count whichever is larger.
        size = max(sum(size_of(f) for f in frames),
                   sum(getattr(r, "wire_size", 0) for r in records))
        if size <= self.max_bytes:
            self._entries[key] = (records, frames, size)
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                _, (_, _, old_size) = self._entries.popitem(last=False)
                self._bytes -= old_size
        return frames

    def __len__(self) -> int:
        return len(self._entries)
