"""An LRU cache of adapters keyed by (tenant, adapter id), bounded by a memory budget in bytes.

An adapter is loaded on first use and kept until room is needed; the least recently used
unpinned adapter goes first. `acquire` pins (reference count), `release` unpins: an adapter
in use by an in-flight batch is never evicted. When the pinned adapters leave no room for a
newcomer, `acquire` raises `CacheFullError` and the caller retries once a batch finishes.
The counters (`CacheStats`) are what the service's /metrics exports.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from core.inference.weights import AdapterKey


class AdapterNotFoundError(LookupError):
    """No adapter is registered under this key (for this tenant)."""


class AdapterTooLargeError(ValueError):
    """The adapter alone is larger than the cache's whole budget."""


class CacheFullError(RuntimeError):
    """Pinned adapters leave no room for this one now; retry when a batch has finished."""


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache's counters and occupancy."""

    hits: int
    misses: int
    evictions: int
    load_failures: int
    entries: int
    pinned: int
    bytes_used: int
    budget_bytes: int


@dataclass
class _Entry(Generic[V]):
    value: V
    nbytes: int
    pins: int = 0
    stale: bool = False  # invalidated while pinned: dropped at the last release


class AdapterCache(Generic[V]):
    """LRU by last `acquire`, within `budget_bytes`; thread-safe.

    Args:
        budget_bytes: the most bytes of adapter tensors held at once.
        load: reads an adapter (on a miss); raises `AdapterNotFoundError` or `ValueError`.
        on_evict: called with each entry that leaves the cache (evicted or invalidated).
    """

    def __init__(
        self,
        budget_bytes: int,
        load: Callable[[AdapterKey], V],
        on_evict: Callable[[AdapterKey, V], None] | None = None,
    ) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"cache_budget_bytes: must be > 0, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._load = load
        self._on_evict = on_evict
        self._entries: OrderedDict[AdapterKey, _Entry[V]] = OrderedDict()  # LRU first
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time: no key is read twice
        self._hits = self._misses = self._evictions = self._load_failures = 0

    def acquire(self, key: AdapterKey) -> V:
        """The adapter under `key`, loaded if needed, pinned until `release(key)`."""
        hit = self._pin_if_present(key)
        if hit is not None:
            return hit
        with self._load_lock:
            hit = self._pin_if_present(key)  # another thread loaded it meanwhile
            if hit is not None:
                return hit
            with self._lock:
                if self._used(pinned_only=True) >= self.budget_bytes:
                    raise CacheFullError(f"{key}: pinned adapters fill the cache budget")
            try:
                value = self._load(key)
            except Exception:
                with self._lock:
                    self._load_failures += 1
                raise
            with self._lock:
                self._misses += 1
                evicted = self._make_room(key, value.nbytes)
                self._entries[key] = _Entry(value, value.nbytes, pins=1)
        self._notify(evicted)
        return value

    def release(self, key: AdapterKey) -> None:
        """Unpin one `acquire` of `key`."""
        dropped: list[tuple[AdapterKey, V]] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.pins == 0:
                raise KeyError(f"{key}: released more often than acquired")
            entry.pins -= 1
            if entry.pins == 0 and entry.stale:
                del self._entries[key]
                dropped.append((key, entry.value))
        self._notify(dropped)

    def invalidate(self, key: AdapterKey) -> bool:
        """Forget `key` (e.g. the adapter was deleted); a pinned one goes at its last release.

        Returns whether the key was cached.
        """
        dropped: list[tuple[AdapterKey, V]] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            if entry.pins:
                entry.stale = True
            else:
                del self._entries[key]
                dropped.append((key, entry.value))
        self._notify(dropped)
        return True

    def keys(self) -> list[AdapterKey]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def pins(self, key: AdapterKey) -> int:
        with self._lock:
            entry = self._entries.get(key)
            return 0 if entry is None else entry.pins

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                load_failures=self._load_failures,
                entries=len(self._entries),
                pinned=sum(1 for e in self._entries.values() if e.pins),
                bytes_used=self._used(),
                budget_bytes=self.budget_bytes,
            )

    def _pin_if_present(self, key: AdapterKey) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.stale:
                return None
            entry.pins += 1
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.value

    def _used(self, pinned_only: bool = False) -> int:
        return sum(e.nbytes for e in self._entries.values() if e.pins or not pinned_only)

    def _make_room(self, key: AdapterKey, nbytes: int) -> list[tuple[AdapterKey, V]]:
        """Evict LRU unpinned entries until `nbytes` fit; call with the lock held."""
        if nbytes > self.budget_bytes:
            raise AdapterTooLargeError(
                f"{key}: {nbytes} bytes exceed the adapter cache budget ({self.budget_bytes} bytes)"
            )
        victims = []
        free = self.budget_bytes - self._used()
        for k, e in self._entries.items():
            if free >= nbytes:
                break
            if not e.pins:
                victims.append(k)
                free += e.nbytes
        if free < nbytes:
            raise CacheFullError(f"{key}: pinned adapters leave {free} of {nbytes} bytes free")
        evicted = [(k, self._entries.pop(k).value) for k in victims]
        self._evictions += len(evicted)
        return evicted

    def _notify(self, dropped: list[tuple[AdapterKey, V]]) -> None:
        if self._on_evict is not None:
            for k, v in dropped:
                self._on_evict(k, v)
