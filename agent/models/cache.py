"""Lazy, budgeted model cache: a model loads on first use and is evicted least-recently-used."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.models.devices import module_bytes


@dataclass
class CachedModel:
    key: str
    obj: Any
    nbytes: int
    device: str


def default_budget(device: str) -> int:
    """60% of what is free now on the device: leaves room for activations and the rest of the process."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free * 0.6)
    import psutil

    return int(psutil.virtual_memory().available * 0.6)


class ModelCache:
    """Holds loaded models per device pool (cuda and cpu are budgeted apart).

    `get` returns the cached object or calls `loader`. Before a new model is kept, older ones are
    evicted until the pool fits the budget; a model bigger than the whole budget is still returned
    (the alternative is failing every request) but evicts everything else first.
    """

    def __init__(self, budget_bytes: int | None = None) -> None:
        self._budget = budget_bytes
        self._entries: OrderedDict[str, CachedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.evictions: list[str] = []

    @staticmethod
    def _pool(device: str) -> str:
        return "cuda" if device.startswith("cuda") else device

    def budget(self, device: str) -> int:
        return self._budget if self._budget is not None else default_budget(device)

    def used(self, device: str) -> int:
        pool = self._pool(device)
        return sum(e.nbytes for e in self._entries.values() if self._pool(e.device) == pool)

    def keys(self) -> list[str]:
        return list(self._entries)

    def get(self, key: str, loader: Callable[[], Any], device: str, nbytes: int | None = None) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key].obj
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # Load outside the cache lock so two different models can load at once, but one model once.
        with key_lock:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key].obj
            obj = loader()
            size = nbytes if nbytes is not None else module_bytes(obj)
            with self._lock:
                self._make_room(size, device)
                self._entries[key] = CachedModel(key, obj, size, device)
            return obj

    def _make_room(self, size: int, device: str) -> None:
        pool = self._pool(device)
        budget = self.budget(device)
        for key in list(self._entries):
            if self.used(device) + size <= budget:
                break
            if self._pool(self._entries[key].device) == pool:
                self.evict(key)

    def evict(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.evictions.append(key)
        del entry
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def clear(self) -> None:
        for key in list(self._entries):
            self.evict(key)
