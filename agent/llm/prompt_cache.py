"""Keeps llama.cpp's evaluated prompt state between calls and between processes.

A plan prompt is ~700 tokens of fixed instructions; evaluating them costs seconds on a laptop CPU.
llama.cpp reuses the KV cache only for the prefix shared with the *previous* call, so alternating
planner and responder prompts, or a fresh `modalgraph ask` process, would pay the full price every
time. This cache stores states keyed by their tokens, in RAM and on disk, and the backend restores
the one sharing the longest prefix with the new prompt. A state is kept only when none kept covers
most of the prompt already (`covers`): saving one copies the whole context, so it is done once per
kind of prompt rather than after every call.

States are stored without llama-cpp-python's per-token logits copy (hundreds of MB): one row is
kept and broadcast on load; llama.cpp re-decodes the last token of a restored state before sampling.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from llama_cpp.llama import Llama, LlamaState
from llama_cpp.llama_cache import BaseLlamaCache


def _slim(state: LlamaState) -> LlamaState:
    scores = state.scores[-1:].copy() if len(state.scores) else state.scores
    return LlamaState(
        input_ids=state.input_ids.copy(),
        scores=scores,
        n_tokens=state.n_tokens,
        llama_state=state.llama_state,
        llama_state_size=state.llama_state_size,
        seed=state.seed,
    )


class PromptStateCache(BaseLlamaCache):
    def __init__(self, n_ctx: int, disk_dir: Path | None = None, max_ram: int = 4, max_disk: int = 4) -> None:
        super().__init__(capacity_bytes=0)
        self.n_ctx = n_ctx
        self.disk_dir = disk_dir
        self.max_ram = max_ram
        self.max_disk = max_disk
        self._ram: OrderedDict[tuple[int, ...], LlamaState] = OrderedDict()
        self._disk_keys: dict[tuple[int, ...], Path] = {}
        if disk_dir is not None and disk_dir.is_dir():
            for path in sorted(disk_dir.glob("*.npz"), key=lambda p: p.stat().st_mtime):
                try:
                    with np.load(path, allow_pickle=False) as data:
                        self._disk_keys[tuple(int(t) for t in data["input_ids"])] = path
                except (OSError, ValueError, KeyError):
                    path.unlink(missing_ok=True)  # a state cut short by a crash: drop it

    @property
    def cache_size(self) -> int:
        """Bytes of state held in RAM; abstract in `BaseLlamaCache`, so required even though unread here."""
        return sum(s.llama_state_size for s in self._ram.values())

    def _best(self, key: tuple[int, ...]) -> tuple[int, ...] | None:
        best, best_len = None, 0
        for candidate in (*self._ram, *self._disk_keys):
            length = Llama.longest_token_prefix(candidate, key)
            if length > best_len:
                best, best_len = candidate, length
        return best

    def __contains__(self, key: Sequence[int]) -> bool:
        return self._best(tuple(key)) is not None

    def __getitem__(self, key: Sequence[int]) -> LlamaState:
        best = self._best(tuple(key))
        if best is None:
            raise KeyError("no cached state shares a prefix")
        if best in self._ram:
            self._ram.move_to_end(best)
            return self._ram[best]
        state = self._read(self._disk_keys[best])
        if state is None:
            self._disk_keys.pop(best, None)
            raise KeyError("cached state unreadable")
        self._remember(best, state)
        return state

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        key = tuple(key)
        state = _slim(value)
        self._remember(key, state)
        if self.disk_dir is not None and not self._covered_on_disk(key):
            self._write(key, state)

    def covers(self, key: Sequence[int]) -> bool:
        """Whether a kept state shares most of `key` (the fixed instructions): keeping this one too
        would only cost a copy of the whole context."""
        key = tuple(key)
        return _shares_most(key, self._ram) or _shares_most(key, self._disk_keys)

    def _covered_on_disk(self, key: tuple[int, ...]) -> bool:
        # A saved state sharing most of this prompt (the fixed instructions) already gives a new
        # process its warm start; writing tens of MB per call would only churn the disk.
        return _shares_most(key, self._disk_keys)

    def _remember(self, key: tuple[int, ...], state: LlamaState) -> None:
        self._ram[key] = state
        self._ram.move_to_end(key)
        while len(self._ram) > self.max_ram:
            self._ram.popitem(last=False)

    def _read(self, path: Path) -> LlamaState | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                blob = data["llama_state"].tobytes()
                # llama-cpp-python keeps input_ids as an n_ctx-long buffer; only the used part is stored.
                input_ids = np.zeros(self.n_ctx, dtype=np.intc)
                used = data["input_ids"].astype(np.intc)
                input_ids[: len(used)] = used
                return LlamaState(
                    input_ids=input_ids,
                    scores=data["scores"].astype(np.single),
                    n_tokens=int(data["n_tokens"]),
                    llama_state=blob,
                    llama_state_size=len(blob),
                    seed=int(data["seed"]),
                )
        except (OSError, ValueError, KeyError):
            return None

    def _write(self, key: tuple[int, ...], state: LlamaState) -> None:
        assert self.disk_dir is not None
        name = hashlib.sha256(np.asarray(key, dtype=np.int64).tobytes()).hexdigest()[:32]
        target = self.disk_dir / f"{name}.npz"
        try:
            self.disk_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.disk_dir, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    input_ids=state.input_ids[: state.n_tokens],
                    scores=state.scores,
                    n_tokens=state.n_tokens,
                    llama_state=np.frombuffer(state.llama_state, dtype=np.uint8),
                    seed=state.seed,
                )
            os.replace(tmp, target)
        except OSError:
            return  # a cache that cannot be written only costs speed
        self._disk_keys[key] = target
        while len(self._disk_keys) > self.max_disk:
            oldest = next(iter(self._disk_keys))
            self._disk_keys.pop(oldest).unlink(missing_ok=True)


def _shares_most(key: tuple[int, ...], kept: Iterable[tuple[int, ...]]) -> bool:
    """Whether one of `kept` shares at least three quarters of `key` as its prefix."""
    return any(Llama.longest_token_prefix(k, key) >= 0.75 * len(key) for k in kept)
