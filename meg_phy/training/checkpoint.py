"""Training checkpoints without pickle: tensors in one safetensors file, everything else as JSON inside it.

A checkpoint is a nested dict whose leaves are tensors or JSON values (numbers, strings, bools, None,
lists, dicts with string keys), e.g. {"step": 120, "model": model.state_dict(), "opt": opt.state_dict()}.
Tensors are stored flat under their path ("opt/state/3/exp_avg"); the rest of the structure is a JSON
document in the file's metadata (and a readable copy beside it, `<name>.json`). One file is written
atomically, so a checkpoint is never half new. Loading never runs code: safetensors and json only.
Optimiser state dicts fit as they are (their integer keys and tuples come back as torch accepts them).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from meg_common.errors import InputError
from meg_common.io import atomic_write, atomic_write_json

_TENSOR = "__tensor__"
_INT_KEYS = "__int_keys__"


def _flatten(obj, path: str, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {_TENSOR: path}
    if isinstance(obj, dict):
        int_keys = bool(obj) and all(isinstance(k, int) for k in obj)
        if not int_keys and not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpoint: keys at {path or '/'} must be all str or all int")
        out = {str(k): _flatten(v, f"{path}/{k}", tensors) for k, v in obj.items()}
        if int_keys:
            out[_INT_KEYS] = True
        return out
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {path or '/'} without pickle")


def _unflatten(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        int_keys = obj.get(_INT_KEYS, False)
        return {(int(k) if int_keys else k): _unflatten(v, tensors) for k, v in obj.items() if k != _INT_KEYS}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` (a .safetensors file) atomically, plus a readable `<path>.json` copy."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(state, "", tensors)
    document = json.dumps(structure)
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"meg_phy_checkpoint": document}))
    atomic_write_json(path.with_suffix(".json"), _readable(structure))
    return path


def _readable(structure):
    """The JSON structure with tensor references shortened, for people reading the sidecar."""
    if isinstance(structure, dict):
        if set(structure) == {_TENSOR}:
            return "<tensor>"
        return {k: _readable(v) for k, v in structure.items()}
    if isinstance(structure, list):
        return [_readable(v) for v in structure]
    return structure


def load_checkpoint(path: str | Path) -> dict | None:
    """The state saved at `path`, or None when there is none; InputError (with the fix) when unreadable."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        document = metadata["meg_phy_checkpoint"]
        return _unflatten(json.loads(document), tensors)
    except Exception as exc:  # safetensors raises its own error types; every failure means the same here
        raise InputError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {str(exc)[:120]}); delete it "
                         "to redo that stage") from exc
