"""Denoising results kept by the exact value of their inputs.

A campaign runs the same edge-server work at many design points: EIUG's ES denoises a task's latent to the
split step identically at every downlink SNR and channel, CENTRALIZED's ES generates the same image for its
digital, analog, SoftCast and capacity series. `SplitLDM.denoise` is a pure function of the seed, the
prompt condition, the step range, the tile and the generator's state, so a result computed once can be
returned again: bit for bit what the computation would give (same model, device and thread count), the
generator left where the computation would leave it. `DenoiseMemo` is that table, bounded (least recently
used entries go first); a campaign worker attaches one to its model (`SplitLDM.memo`).

Compute time stays honest: an entry keeps the wall seconds its computation took, and a hit adds them to the
memo's `saved_s`, which whoever times a stage (flowgraphs.stages) reads before and after and adds to what it
measured, so a run reports what its work costs, not what the lookup did.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch


def _digest(h, value: Any) -> None:
    """Feed `value` into hash `h`: tensors by dtype, shape and bytes, containers element by element."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _digest(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _digest(h, v)
        h.update(b"]")
    else:
        h.update(repr(value).encode())


def memo_key(*parts: Any) -> bytes:
    """A digest of `parts` (tensors by value): equal inputs, equal keys."""
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        _digest(h, part)
        h.update(b"|")
    return h.digest()


class DenoiseMemo:
    """Up to `max_entries` denoising results by input digest, with hit and miss counts."""

    def __init__(self, max_entries: int = 2048):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[bytes, tuple[Any, Any, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.saved_s = 0.0
        """Seconds of computation that this memo's hits stood in for, so far."""

    def get(self, key: bytes) -> tuple[Any, Any] | None:
        """(result, generator state after) for `key`, or None (counted as a miss); a hit adds the seconds
        its computation took to `saved_s`."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        result, state, seconds = found
        self.saved_s += seconds
        return result, state

    def put(self, key: bytes, result: Any, generator_state: Any = None, seconds: float = 0.0) -> None:
        """Keep `result` (and the generator state after it, and the wall seconds it took) under `key`."""
        self._entries[key] = (result, generator_state, float(seconds))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def recall(self, key: bytes, compute: Callable[[], Any], generator: torch.Generator | None = None) -> Any:
        """`compute()`'s result for `key`: kept, or computed now and kept (with its wall seconds and the state
        it leaves `generator` in, which a later hit restores). The caller gets its own copy either way."""
        found = self.get(key)
        if found is not None:
            result, state = found
            if generator is not None:
                generator.set_state(state)
            return copy.deepcopy(result)
        start = time.perf_counter()
        result = compute()
        self.put(key, copy.deepcopy(result), None if generator is None else generator.get_state(),
                 time.perf_counter() - start)
        return result

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}
