"""The adapter LRU cache: budget, eviction order, pinning, invalidation, counters."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from core.inference import (
    AdapterCache,
    AdapterKey,
    AdapterNotFoundError,
    AdapterTooLargeError,
    CacheFullError,
    CacheStats,
)


@dataclass
class Blob:
    """A cache value of a given size (the cache only reads `nbytes`)."""

    name: str
    nbytes: int


SIZES = {"a": 40, "b": 30, "c": 30, "d": 50, "huge": 101}


class Store:
    """Loads blobs by name and records what the cache loads and lets go."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.evicted: list[str] = []

    def load(self, key: AdapterKey) -> Blob:
        if key.adapter_id not in SIZES:
            raise AdapterNotFoundError(key.adapter_id)
        self.loads.append(key.adapter_id)
        return Blob(key.adapter_id, SIZES[key.adapter_id])

    def on_evict(self, key: AdapterKey, value: Blob) -> None:
        self.evicted.append(value.name)


def k(name: str, tenant: str = "t") -> AdapterKey:
    return AdapterKey(tenant, name)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def cache(store: Store) -> AdapterCache[Blob]:
    return AdapterCache(100, store.load, store.on_evict)


def use(cache: AdapterCache[Blob], name: str) -> Blob:
    value = cache.acquire(k(name))
    cache.release(k(name))
    return value


def test_least_recently_used_goes_first_and_the_budget_holds(cache, store) -> None:
    for name in ["a", "b", "c"]:  # 100 bytes: full
        use(cache, name)
    use(cache, "a")  # a is now the most recent
    use(cache, "d")  # 50 more: b then c must go (LRU first), a stays
    assert store.evicted == ["b", "c"]
    assert cache.keys() == [k("a"), k("d")]
    assert cache.stats() == CacheStats(
        hits=1, misses=4, evictions=2, load_failures=0, entries=2, pinned=0, bytes_used=90, budget_bytes=100
    )


def test_a_hit_does_not_load_again(cache, store) -> None:
    assert use(cache, "a") is use(cache, "a")
    assert store.loads == ["a"]
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)


def test_pinned_adapters_are_never_evicted(cache, store) -> None:
    cache.acquire(k("a"))
    cache.acquire(k("b"))
    use(cache, "c")
    with pytest.raises(CacheFullError):
        cache.acquire(k("d"))  # a and b are pinned: evicting c would free 30 of the 50 bytes needed
    assert store.evicted == [] and cache.keys() == [k("a"), k("b"), k("c")]
    cache.release(k("b"))
    assert use(cache, "d").name == "d"  # now b (LRU unpinned) then c go
    assert store.evicted == ["b", "c"] and cache.pins(k("a")) == 1


def test_refcount_needs_every_acquire_released(cache) -> None:
    cache.acquire(k("a"))
    cache.acquire(k("a"))
    cache.release(k("a"))
    assert cache.pins(k("a")) == 1 and cache.stats().pinned == 1
    cache.release(k("a"))
    with pytest.raises(KeyError, match="released more often"):
        cache.release(k("a"))


def test_an_adapter_larger_than_the_budget_is_refused(cache) -> None:
    with pytest.raises(AdapterTooLargeError, match="exceed"):
        cache.acquire(k("huge"))
    assert cache.keys() == []


def test_unknown_adapters_count_as_load_failures(cache) -> None:
    with pytest.raises(AdapterNotFoundError):
        cache.acquire(k("nope"))
    assert cache.stats().load_failures == 1 and cache.stats().misses == 0


def test_tenants_never_share_an_entry(cache, store) -> None:
    cache.acquire(k("a", tenant="x"))
    cache.acquire(k("a", tenant="y"))
    assert store.loads == ["a", "a"] and cache.stats().entries == 2


def test_invalidating_a_pinned_adapter_drops_it_at_its_last_release(cache, store) -> None:
    cache.acquire(k("a"))
    assert cache.invalidate(k("a"))
    assert store.evicted == [] and k("a") in cache
    cache.release(k("a"))
    assert store.evicted == ["a"] and cache.keys() == []
    use(cache, "a")  # the next use reads it again
    assert store.loads == ["a", "a"]
    assert not cache.invalidate(k("missing"))


def test_concurrent_acquires_load_each_adapter_once(cache, store) -> None:
    barrier = threading.Barrier(8)

    def worker(name: str) -> None:
        barrier.wait()
        for _ in range(20):
            use(cache, name)

    threads = [threading.Thread(target=worker, args=("ab"[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.loads) == ["a", "b"]
    stats = cache.stats()
    assert stats.hits + stats.misses == 160 and stats.pinned == 0


def test_a_non_positive_budget_is_rejected(store) -> None:
    with pytest.raises(ValueError, match="cache_budget_bytes"):
        AdapterCache(0, store.load)
