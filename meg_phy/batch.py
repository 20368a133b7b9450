"""The split LDM's stages on many tasks at once: one model call per stage (per denoising step) for all of them.

A campaign runs one protocol on many tasks; on a CPU a batch of one is mostly call overhead for a small
UNet. These functions run the text encoder, the VAE and the UNet once for a batch of tasks, while what
belongs to a task stays the task's own, so each task gets what `SplitLDM`'s one-task stages give it:

- its generator: the VAE posterior sample and the img2img noise come from the task's own
  `torch.Generator` (diffusers' `randn_tensor` draws each batch element from its generator of a list, the
  same draws as a batch of one);
- its schedule: a received seed resumed channel-aware carries its own timesteps (and length), so every step
  the UNet runs on the tasks that still have a step to run, each at its own timestep;
- its scheduler (state included) and its guidance combination, on its own slice, as in `SplitLDM.denoise`.

Float results: the elementwise parts (noising, guidance, scheduler steps) run on each task's slice with the
same shapes as a one-task run, so they are bit-identical given the same model outputs. The model calls are
not, on a CPU: PyTorch's oneDNN convolutions and MKL GEMMs pick their algorithm by batch size (measured on
the embedded model: 1x1 convolutions with bias at batch <= 12 vs >= 16, the time-embedding linears at M = 2
vs 64, the VAE's 3x3 convolutions at batch 1 vs 16), so sums round differently: a UNet output differs by
about 1e-6, a decoded image by about 1e-5 (benchmarks/bench_campaign.py measures it on whole runs).

Repeated work: with a memo on the model (`SplitLDM.memo`, meg_phy.memo), `denoise` keeps the result of a
whole batch by the exact value of its inputs (every seed, the condition, the targets): a campaign's ES
denoises the same chunk of tasks identically at every SNR and channel, and the same batch of inputs gives
the same batch of outputs bit for bit (batched denoising draws no noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from meg_common.errors import InputError
from meg_phy.ldm import PromptCondition, Seed, SplitLDM


def encode_prompts(ldm: SplitLDM, prompts: Sequence[str], guidance: float) -> PromptCondition:
    """One text-encoder call for all prompts: embeds (B, L, D), one unconditional embedding (1, L, D)."""
    if not prompts:
        raise InputError("no prompts to encode; give one per task")
    return ldm.encode_prompt(list(prompts), guidance=guidance)


@torch.no_grad()
def start(ldm: SplitLDM, images: torch.Tensor | None, generators: Sequence[torch.Generator], strength: float,
          steps: int) -> list[Seed]:
    """`SplitLDM.start` for B tasks (images (B, 3, H, W), or None: text-to-image), task i drawing from
    generators[i]; one VAE encoding for all. Returns one seed (latents (1, C, h, w)) per task."""
    if images is not None and images.shape[0] != len(generators):
        raise InputError(f"{images.shape[0]} images for {len(generators)} generators; give one generator per task")
    seed = ldm.start(None, images, strength=strength, steps=steps, generator=list(generators),
                     batch_size=len(generators))
    return [seed.replace(latents=seed.latents[i:i + 1]) for i in range(len(generators))]


@torch.no_grad()
def denoise(ldm: SplitLDM, seeds: Sequence[Seed], cond: PromptCondition,
            until: int | Sequence[int | None] | None = None) -> list[Seed]:
    """`SplitLDM.denoise` for B seeds at once: seed i runs its steps seed.step .. until[i]-1 (None: to its end)
    with its own schedule and scheduler; `cond` has one embedding per seed (or one for all) and one guidance.
    Every step is one UNet call on the seeds that still have a step to run. With `ldm.memo`, a batch seen
    before returns its kept result (module docstring)."""
    if getattr(ldm, "memo", None) is None:
        return _denoise(ldm, seeds, cond, until)
    import dataclasses

    from meg_phy.memo import memo_key

    key = memo_key("denoise-batch", [[getattr(s, f.name) for f in dataclasses.fields(s)] for s in seeds],
                   cond.prompt, cond.negative_prompt, cond.guidance, cond.embeds, cond.uncond_embeds,
                   list(until) if isinstance(until, Sequence) else until)
    return ldm.memo.recall(key, lambda: _denoise(ldm, seeds, cond, until))


def _denoise(ldm: SplitLDM, seeds: Sequence[Seed], cond: PromptCondition,
             until: int | Sequence[int | None] | None) -> list[Seed]:
    seeds = [ldm.resolve_timesteps(s) for s in seeds]
    count = len(seeds)
    if cond.embeds.shape[0] not in (1, count):
        raise InputError(f"{cond.embeds.shape[0]} prompt embeddings for {count} seeds")
    targets = [s.total if t is None else int(t)
               for s, t in zip(seeds, until if isinstance(until, Sequence) else [until] * count, strict=True)]
    for s, t in zip(seeds, targets, strict=True):
        if s.region is not None:
            raise InputError("batched denoising runs whole seeds; denoise tiles one task at a time")
        if not s.step <= t <= s.total:
            raise InputError(f"denoise until step {t}: must be between the seed's step {s.step} and its "
                             f"schedule length {s.total}")
        ldm._check_latent_size(s.latents.shape[-2:])
    scheds = [ldm._scheduler_for(s) for s in seeds]
    latents = [s.latents.to(ldm.device, ldm.dtype) for s in seeds]
    steps = [s.step for s in seeds]
    embeds = [cond.embeds[i:i + 1] if cond.embeds.shape[0] == count else cond.embeds for i in range(count)]
    while True:
        active = [i for i in range(count) if steps[i] < targets[i]]
        if not active:
            break
        ts = [seeds[i].timesteps[steps[i]] for i in active]
        if cond.uses_guidance:   # per task as SplitLDM.denoise: [latent, latent], scaled; then [uncond..., cond...]
            pairs = [scheds[i].scale_model_input(torch.cat([latents[i]] * 2), t) for i, t in zip(active, ts, strict=True)]
            model_in = torch.cat([p[:1] for p in pairs] + [p[1:] for p in pairs])
            t_in = torch.stack(ts + ts)
            text = torch.cat([embeds[i] for i in active])
            hidden = torch.cat([cond.uncond_embeds.expand(len(active), -1, -1), text])
        else:
            model_in = torch.cat([scheds[i].scale_model_input(latents[i], t) for i, t in zip(active, ts, strict=True)])
            t_in = torch.stack(ts)
            hidden = torch.cat([embeds[i] for i in active])
        out = ldm.unet(model_in, t_in, encoder_hidden_states=hidden).sample
        n = len(active)
        for j, (i, t) in enumerate(zip(active, ts, strict=True)):
            if cond.uses_guidance:
                uncond, text_out = out[j:j + 1], out[n + j:n + j + 1]
                pred = uncond + cond.guidance * (text_out - uncond)
            else:
                pred = out[j:j + 1]
            latents[i] = scheds[i].step(pred, t, latents[i]).prev_sample
            steps[i] += 1
    prompts = cond.prompt if isinstance(cond.prompt, list) and len(cond.prompt) == count else [cond.prompt] * count
    return [s.replace(latents=latents[i], step=targets[i], scheduler_state=ldm._scheduler_state(scheds[i]),
                      guidance=cond.guidance, prompt=prompts[i]) for i, s in enumerate(seeds)]


@torch.no_grad()
def decode(ldm: SplitLDM, seeds: Sequence[Seed]) -> torch.Tensor:
    """`SplitLDM.decode` of B seeds in one VAE call: images (B, 3, H, W) in [0, 1]."""
    return ldm.decode(torch.cat([s.latents for s in seeds]))
