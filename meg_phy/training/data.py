"""The fixed procedural training set: every attribute combination times many jitter seeds.

Held-out data for evaluation uses seeds from `HELD_OUT_SEED` upwards, which training never renders, so
"held-out" means unseen jitter and unseen diffusion noise (the attribute combinations are few).
"""

from __future__ import annotations

import torch

from meg_phy.scenes import all_combinations, make_prompt, render_batch

HELD_OUT_SEED = 10_000_000
_CHUNK = 2048


def training_set(n_images: int, seed: int = 0, chunk_callback=None) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """(images (N,3,H,W), prompts (one per combination), prompt index per image), deterministic by seed.

    Combinations are cycled so each appears equally often; image i has jitter seed `seed * n_images + i`.
    """
    combos = all_combinations()
    prompts = [make_prompt(c) for c in combos]
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed)) % len(combos)
    images = torch.empty(n_images, 3, 32, 32)
    for start in range(0, n_images, _CHUNK):
        idx = order[start:start + _CHUNK].tolist()
        seeds = [seed * n_images + start + j for j in range(len(idx))]
        images[start:start + len(idx)] = render_batch([combos[k] for k in idx], seeds)
        if chunk_callback:
            chunk_callback(len(idx))
    return images, prompts, order


def held_out_scenes(n: int, offset: int = 0) -> tuple[list[dict[str, str]], list[int]]:
    """`n` attribute sets and jitter seeds that training never uses."""
    from meg_phy.scenes import sample_attributes

    attrs = sample_attributes(torch.Generator().manual_seed(HELD_OUT_SEED + offset), n)
    return attrs, [HELD_OUT_SEED + offset + i for i in range(n)]
