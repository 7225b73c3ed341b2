"""Where the engine's adapters come from and where they live: registry, LRU cache, slot table.

    (tenant, adapter id) --registry / resolver--> directory --cache (LRU, budget, pins)-->
    ServingAdapter --slot table (scheduler thread only)--> slot id used by batch rows

A checkpoint is served like a final adapter: its `checkpoints/step-N/adapter` directory is
registered (or resolved) under the checkpoint's id. The cache may evict from any thread
(`invalidate`); the slot table is touched by the scheduler thread alone, which drops the
slots of evicted adapters before each step.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from core.inference.cache import AdapterCache, AdapterNotFoundError
from core.inference.slots import SlotTable
from core.inference.weights import AdapterKey, ServingAdapter, read_serving_adapter

AdapterResolver = Callable[[AdapterKey], str | os.PathLike[str] | None]


class AdapterStore:
    """Adapters of one base model, by key, loaded on first use within a memory budget."""

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype,
        device: torch.device,
        budget_bytes: int,
        resolver: AdapterResolver | None = None,
    ) -> None:
        self.model, self.dtype, self.device = model, dtype, device
        self.table = SlotTable(model)
        self.cache: AdapterCache[ServingAdapter] = AdapterCache(budget_bytes, self._load, self._on_evict)
        self._resolver = resolver
        self._registry: dict[AdapterKey, Path] = {}
        self._lock = threading.Lock()
        self._slots: dict[AdapterKey, tuple[ServingAdapter, int]] = {}
        self._evicted: deque[tuple[AdapterKey, ServingAdapter]] = deque()

    def register(self, key: AdapterKey, directory: str | os.PathLike[str]) -> None:
        path = Path(directory)
        with self._lock:
            previous = self._registry.get(key)
            self._registry[key] = path
        if previous is not None and previous != path:
            self.cache.invalidate(key)  # the key now names other weights

    def unregister(self, key: AdapterKey) -> bool:
        with self._lock:
            known = self._registry.pop(key, None) is not None
        self.cache.invalidate(key)
        return known

    def directory(self, key: AdapterKey) -> Path:
        """The adapter directory of `key`; `AdapterNotFoundError` if there is none."""
        with self._lock:
            path = self._registry.get(key)
        if path is None and self._resolver is not None:
            found = self._resolver(key)
            path = Path(found) if found is not None else None
        if path is None or not path.is_dir():
            raise AdapterNotFoundError(f"adapter {key.adapter_id!r} not found for tenant {key.tenant!r}")
        return path

    def _load(self, key: AdapterKey) -> ServingAdapter:
        return read_serving_adapter(self.directory(key), self.model, self.dtype, self.device)

    def _on_evict(self, key: AdapterKey, adapter: ServingAdapter) -> None:
        self._evicted.append((key, adapter))

    def acquire(self, key: AdapterKey) -> int:
        """Pin the adapter of `key` (loading it if needed) and return its slot; scheduler thread."""
        adapter = self.cache.acquire(key)
        try:
            known = self._slots.get(key)
            if known is not None and known[0] is adapter:
                return known[1]
            if known is not None:  # replaced under the same key
                self.table.remove(known[1])
            slot = self.table.add(adapter)
        except BaseException:
            self.cache.release(key)
            raise
        self._slots[key] = (adapter, slot)
        return slot

    def release(self, key: AdapterKey) -> None:
        self.cache.release(key)

    def drop_evicted(self) -> None:
        """Free the slots of adapters the cache let go; scheduler thread."""
        while self._evicted:
            key, adapter = self._evicted.popleft()
            known = self._slots.get(key)
            if known is not None and known[0] is adapter:
                del self._slots[key]
                self.table.remove(known[1])
