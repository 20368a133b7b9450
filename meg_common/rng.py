"""Randomness without side effects: Sionna draws from our generator, PyTorch's global RNG stays untouched.

Sionna blocks draw from `sionna.phy.config.torch_rng(device)`, a process-wide generator, and setting
`sionna.phy.config.seed` (or importing Sionna) reseeds PyTorch's *global* generator too, which would
silently change the noise of a diffusion model running in the same process. A link therefore owns a
`torch.Generator`, lends it to Sionna only for the duration of its own calls, and restores both Sionna's
generator and PyTorch's global state afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def preserved_global_rng() -> Iterator[None]:
    """Restore PyTorch's global CPU (and initialised CUDA) RNG state on exit."""
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def import_sionna():
    """`import sionna.phy` without the global reseed its config performs on first import."""
    with preserved_global_rng():
        import sionna.phy

        return sionna.phy


def resolve_device(device: str | None) -> str:
    """Sionna's device name: 'cpu' or 'cuda:N' (None: cuda:0 when available, else cpu)."""
    if device is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            from meg_common.errors import InputError

            raise InputError(f"device '{device}': CUDA is not available here; use --device cpu or leave it unset")
        return f"cuda:{dev.index if dev.index is not None else torch.cuda.current_device()}"
    return "cpu"


def make_generator(seed: int | None, device: str) -> torch.Generator:
    """A generator on `device`, seeded with `seed` (random when None)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


@contextlib.contextmanager
def sionna_rng(generator: torch.Generator) -> Iterator[None]:
    """Route Sionna's random draws on the generator's device through `generator` inside the block."""
    config = import_sionna().config
    key = resolve_device(str(generator.device))
    rngs = config._torch_rngs  # Sionna 2.2 keeps one generator per device here; there is no public setter
    previous = rngs.get(key)
    rngs[key] = generator
    try:
        with preserved_global_rng():
            yield
    finally:
        if previous is None:
            rngs.pop(key, None)
        else:
            rngs[key] = previous
