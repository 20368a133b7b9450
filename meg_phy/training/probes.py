"""The grounded recipe's go/no-go probes: is the text heard where layout is decided (t >= 600)?

Two numbers, both on held-out scenes drawn like the eval prompts (the issue's bars at 60 UNet-minutes):
- `attention_in_objects`: the share of an object word's cross-attention inside that object's pixels at a
  high-noise timestep, against uniform attention (go: >= 2x);
- `x0_positions`: from pure noise, whether the guided x0-prediction puts an object in the cell the prompt
  names, against chance (go: >= 3x).
The trainer logs both at every UNet evaluation; `scripts/probe_grounding.py` runs them on a model folder.
"""

from __future__ import annotations

import contextlib

import torch

from meg_phy import scenes
from meg_phy.training import components, grounding
from meg_phy.training.data import EVAL_PROMPTS_OFFSET, HELD_OUT_SEED, held_out, prompt_spec


def probe_scenes(n: int) -> tuple[list[dict], list[int], list[tuple]]:
    """The probes' `n` held-out scenes, their render seeds and prompt specs (`prompt_spec`'s output)."""
    scene_list, seeds = held_out(n, offset=EVAL_PROMPTS_OFFSET)
    specs = [prompt_spec(s, torch.Generator().manual_seed(seed)) for s, seed in zip(scene_list, seeds, strict=True)]
    return scene_list, seeds, specs


@contextlib.contextmanager
def _evaluating(*modules):
    """Eval mode inside, each module's own training flag restored after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


@torch.no_grad()
def attention_in_objects(unet, text_encoder, vae, n: int = 64, t: int = 951, device="cpu") -> dict:
    """Share of an object word's cross-attention inside its object at timestep `t`, against uniform.

    Returns {"t", "n", "inside", "uniform", "ratio"} (`grounding.attention_in_object`'s figures)."""
    device = torch.device(device)
    scene_list, seeds, specs = probe_scenes(n)
    ids = components.FastTokenizer()([scenes.make_prompt(sp[0]) for sp in specs]).to(device)
    images = scenes.render_batch(scene_list, seeds).to(device) * 2 - 1
    z0 = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    a = components.build_train_scheduler().alphas_cumprod[t].to(device)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(t)).to(device)
    targets = grounding.targets_for(scene_list, seeds, specs, ids.shape[1])
    with _evaluating(unet, text_encoder), grounding.AttentionCapture(unet) as maps:
        unet(a.sqrt() * z0 + (1 - a).sqrt() * noise, torch.full((n,), t, device=device),
             text_encoder(ids).last_hidden_state)
    return {"t": t, "n": n, **grounding.attention_in_object(maps, targets)}


@torch.no_grad()
def x0_positions(unet, text_encoder, vae, reader, n: int = 128, ts: tuple[int, ...] = (951, 801, 651),
                 guidance: float = 4.0, device="cpu") -> dict:
    """From pure noise, does the guided x0-prediction at each timestep in `ts` put an object in the cell the
    prompt names? Per timestep: objects with a named cell, hits (the reader finds an object there), and
    chance (for each named object, the share of the nine cells where the reader finds an object in that image)."""
    device = torch.device(device)
    specs = [spec for spec, *_ in probe_scenes(n)[2]]
    fast = components.FastTokenizer()
    alphas = components.build_train_scheduler().alphas_cumprod.to(device)
    gen = torch.Generator().manual_seed(HELD_OUT_SEED)
    shape = (n, components.LATENT_CHANNELS, components.LATENT_SIZE, components.LATENT_SIZE)
    out = {}
    with _evaluating(unet, text_encoder):
        cond = text_encoder(fast([scenes.make_prompt(sp) for sp in specs]).to(device)).last_hidden_state
        uncond = text_encoder(fast([""] * n).to(device)).last_hidden_state
        for t in ts:
            noise = torch.randn(shape, generator=gen).to(device)
            steps = torch.full((n,), t, device=device)
            e_cond, e_uncond = unet(torch.cat([noise, noise]), torch.cat([steps, steps]),
                                    torch.cat([cond, uncond])).sample.chunk(2)
            eps = e_uncond + guidance * (e_cond - e_uncond)
            x0 = (noise - (1 - alphas[t]).sqrt() * eps) / alphas[t].sqrt()
            images = (vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1) + 1) / 2
            hits = named = 0
            chance = 0.0
            for spec, reading in zip(specs, reader.read(images.cpu()), strict=True):
                found = {o["position"] for o in reading["objects"]}
                for obj in spec["objects"]:
                    if "position" in obj:
                        named += 1
                        hits += obj["position"] in found
                        chance += len(found) / len(scenes.POSITIONS)
            out[str(t)] = {"named": named, "hits": hits, "chance": round(chance, 2),
                           "ratio": round(hits / chance, 3) if chance else None}
    return {"n": n, "guidance": guidance, "t": out}
