"""The split latent diffusion model: each LDM part runs as a stage that takes and returns plain tensors.

MEG protocols run the parts of one Stable-Diffusion-style model on different machines: text encoding
(`encode_prompt`), VAE encoding plus noising to an img2img strength (`start`), denoising between two steps
(`denoise`, also on one spatial tile), VAE decoding (`decode`). What travels between the stages is a `Latent`:
the latent plus everything the next machine needs to continue bit-exactly (step index, the timestep schedule,
strength, scheduler name, config and internal state, guidance, prompt), as plain data.

`load_ldm(path)` loads any local SD 1.x/2.x diffusers folder (default: the embedded model). DDIM is the default
scheduler (stateless, deterministic with eta=0, and it accepts the arbitrary timestep schedules that
channel-aware resume needs); DPM-Solver++ (multistep: its history of model outputs travels in the seed) and
Euler (its step index is rebuilt from the seed) fit the same split.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from meg_common.errors import InputError

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
}
# What an SD 1.x/2.x folder's model_index.json may name for each component: (library, class). Only these
# public diffusers/transformers classes are loaded; anything else is refused before any import.
COMPONENTS = {
    "unet": (("diffusers", "UNet2DConditionModel"),),
    "vae": (("diffusers", "AutoencoderKL"),),
    "text_encoder": (("transformers", "CLIPTextModel"),),
    "tokenizer": (("transformers", "CLIPTokenizer"), ("transformers", "CLIPTokenizerFast")),
}
LAYOUT = ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler")
SD_GUIDANCE = 7.5  # Stable Diffusion's usual classifier-free guidance scale
EMBEDDED_GUIDANCE = 4.0  # the scale the embedded model is trained and evaluated for (meg_phy.training)
DEFAULTS_FILE = "meg_phy.json"  # optional {"guidance": ...} in a model folder

Box = tuple[int, int, int, int]  # (top, left, height, width) in latent pixels


@dataclass
class PromptCondition:
    """Output of the text stage: the prompt embedding and, for classifier-free guidance, the unconditional one."""

    prompt: str | list[str]
    negative_prompt: str
    guidance: float
    embeds: torch.Tensor  # (1 or B, L, D)
    uncond_embeds: torch.Tensor | None  # (1, L, D)

    @property
    def uses_guidance(self) -> bool:
        return self.uncond_embeds is not None

    def unet_embeds(self, batch: int) -> torch.Tensor:
        """What the UNet is called with: [uncond x B, cond x B] under guidance (the diffusers order), else cond x B."""
        if self.embeds.shape[0] not in (1, batch):
            raise InputError(f"{self.embeds.shape[0]} prompts for a batch of {batch} latents")
        cond = self.embeds.expand(batch, -1, -1)
        if self.uncond_embeds is None:
            return cond
        return torch.cat([self.uncond_embeds.expand(batch, -1, -1), cond])


@dataclass
class Latent:
    """A latent at some step of a denoising run (e.g. the ES's partially denoised latent, the payload users
    call the "latent seed"), with its position in the schedule and what is needed to resume it bit-exactly
    elsewhere.

    `latents` are in the scheduler's space (VAE latents times the VAE scaling factor, plus noise).
    `timesteps` is the schedule this run executes (img2img: already truncated to the strength); `step`
    counts the steps of it done, so the latent's noise level is `timesteps[step]` (or fully denoised when
    `step == len(timesteps)`). `timesteps=None` means "rebuild the schedule from num_inference_steps and
    begin_index with the receiver's own scheduler" (what a payload carries). `region` marks a spatial tile
    (top, left, height, width) of a latent of `full_size` (h, w).
    """

    latents: torch.Tensor
    step: int
    timesteps: torch.Tensor | None
    num_inference_steps: int
    begin_index: int = 0
    strength: float = 1.0
    guidance: float = 1.0
    prompt: str | list[str] = ""
    scheduler: str = "ddim"
    scheduler_config: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] = field(default_factory=dict)
    region: Box | None = None
    full_size: tuple[int, int] | None = None

    @property
    def total(self) -> int:
        """Number of steps of this run's schedule."""
        if self.timesteps is None:
            return self.num_inference_steps - self.begin_index
        return int(self.timesteps.numel())

    @property
    def done(self) -> bool:
        return self.step >= self.total

    @property
    def timestep(self) -> float | None:
        """The timestep whose noise level the latent is at; None once fully denoised (or schedule unknown)."""
        if self.done or self.timesteps is None:
            return None
        return float(self.timesteps[self.step])

    def replace(self, **changes: Any) -> Latent:
        return dataclasses.replace(self, **changes)

    def crop(self, box: Box) -> Latent:
        """The tile `box` of this seed (latents and any spatial scheduler state), for multi-ES parallel work."""
        top, left, height, width = (int(v) for v in box)
        h, w = self.latents.shape[-2:]
        if top < 0 or left < 0 or height < 1 or width < 1 or top + height > h or left + width > w:
            raise InputError(f"tile {box} does not fit in a latent of {h}x{w}; use a layout from meg_phy.tiles")

        def cut(t: Any) -> Any:
            if isinstance(t, torch.Tensor) and t.shape[-2:] == (h, w):
                return t[..., top:top + height, left:left + width].clone()
            if isinstance(t, list):
                return [cut(v) for v in t]
            return t

        offset = self.region[:2] if self.region else (0, 0)
        return self.replace(latents=cut(self.latents),
                            scheduler_state={k: cut(v) for k, v in self.scheduler_state.items()},
                            region=(offset[0] + top, offset[1] + left, height, width),
                            full_size=self.full_size or (h, w))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (tensors as nested lists with dtype); `Latent.from_dict` restores it exactly."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _plain(out)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latent:
        try:
            values = {f.name: _unplain(data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
            for name in ("region", "full_size"):
                if values.get(name) is not None:
                    values[name] = tuple(values[name])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a seed dict ({exc}); expected the output of Latent.to_dict()") from None


def merge_latents(tiles: list[Latent], layout) -> Latent:
    """Blend tile seeds (same step) into one full-size seed with `meg_phy.tiles.merge` (latents and state)."""
    from meg_phy import tiles as tiling

    if not tiles:
        raise InputError("no tile seeds to merge")
    steps = {s.step for s in tiles}
    if len(steps) != 1:
        raise InputError(f"tile seeds are at different steps {sorted(steps)}; denoise all tiles to the same step")

    def blend(parts: list[Any]) -> Any:
        if isinstance(parts[0], torch.Tensor) and parts[0].dim() >= 2:
            return tiling.merge(parts, layout)
        if isinstance(parts[0], list):
            return [blend([p[i] for p in parts]) for i in range(len(parts[0]))]
        return parts[0]

    first = tiles[0]
    state = {k: blend([s.scheduler_state[k] for s in tiles]) for k in first.scheduler_state}
    return first.replace(latents=blend([s.latents for s in tiles]), scheduler_state=state, region=None,
                         full_size=None)


class SplitLDM:
    """A Stable-Diffusion-style model whose parts run as separate stages (diffusers components inside)."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict[str, Any],
                 scheduler: str = "ddim", device: str | torch.device = "cpu", path: Path | None = None):
        if scheduler not in SCHEDULERS:
            raise InputError(f"scheduler '{scheduler}' is not supported; choose one of {', '.join(SCHEDULERS)}")
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.scheduler_name = scheduler
        self.scheduler_config = dict(scheduler_config)
        self.device = torch.device(device)
        self.dtype = unet.dtype
        self.path = path
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.unet_multiple = 2 ** (len(unet.config.block_out_channels) - 1)
        size = unet.config.sample_size
        size = size if isinstance(size, (list, tuple)) else (size, size)
        self.latent_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.latent_channels = int(unet.config.in_channels)
        self.resolution: tuple[int, int] = (self.latent_size[0] * self.vae_scale_factor,
                                            self.latent_size[1] * self.vae_scale_factor)
        self._schedule_probe = self.make_scheduler()
        self.default_guidance = SD_GUIDANCE
        """Guidance used when a caller gives none (load_ldm sets the model's own)."""
        self.runtime = "torch"
        """Where the UNet runs: 'torch' or 'onnx' (meg_phy.runtime; `set_runtime`)."""
        self._onnx_unet = None
        self.memo = None
        """A meg_phy.memo.DenoiseMemo, or None: `denoise` returns a kept result for inputs it has seen (a
        campaign worker sets one; results are bit for bit those of the computation)."""

    def set_runtime(self, name: str = "auto") -> str:
        """Run the UNet on 'torch', 'onnx' (ONNX Runtime, meg-phy[fast]) or 'auto' (ONNX Runtime where it is
        installed and the model is on a CPU in float32); returns the runtime chosen. Outputs agree within
        about 1e-6 (meg_phy.runtime)."""
        from meg_phy.runtime import OnnxUNet, resolve_runtime

        chosen = resolve_runtime(name, self.device, self.dtype)
        if chosen == "onnx" and self._onnx_unet is None:
            self._onnx_unet = OnnxUNet(self.unet)
        self.runtime = chosen
        return chosen

    # ---- schedulers -------------------------------------------------------------------------------------
    def make_scheduler(self, name: str | None = None, config: dict[str, Any] | None = None):
        """A fresh diffusers scheduler of `name` from `config` (default: this model's)."""
        return scheduler_class(name or self.scheduler_name).from_config(
            config if config is not None else self.scheduler_config)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t of the training schedule (float64 on CPU), index = timestep."""
        return self._schedule_probe.alphas_cumprod.to(torch.float64)

    @property
    def final_alpha_cumprod(self) -> float:
        """ᾱ of a fully denoised latent under this scheduler (DDIM: 1 or ᾱ_0 per set_alpha_to_one)."""
        final = getattr(self._schedule_probe, "final_alpha_cumprod", None)
        return float(final) if final is not None else float(self.alphas_cumprod[0])

    @property
    def num_train_timesteps(self) -> int:
        return int(self._schedule_probe.config.num_train_timesteps)

    def schedule(self, steps: int, strength: float = 1.0) -> tuple[torch.Tensor, int]:
        """(timesteps, begin_index) of a run with `steps` inference steps noised to `strength` (diffusers' rule)."""
        if not isinstance(steps, int) or steps < 1 or steps > self.num_train_timesteps:
            raise InputError(f"steps {steps}: must be an integer from 1 to {self.num_train_timesteps}")
        if not 0.0 < float(strength) <= 1.0:
            raise InputError(f"strength {strength}: must be in (0, 1]")
        sched = self.make_scheduler()
        sched.set_timesteps(steps)
        init_timestep = min(int(steps * strength), steps)
        begin = max(steps - init_timestep, 0) * sched.order
        if begin >= len(sched.timesteps):
            raise InputError(f"strength {strength} with {steps} steps leaves no denoising step; "
                             f"raise the strength to at least {1 / steps:.3g} or use more steps")
        return sched.timesteps[begin:].clone(), begin

    def _scheduler_for(self, seed: Latent):
        """A scheduler positioned at `seed.step`, with the seed's internal state restored (public API only).

        Stateful schedulers (DPM-Solver++, Euler) take their step index from `begin_index` on their first
        `scale_model_input`/`step` call; that is how diffusers' img2img pipeline starts mid-schedule, and
        beginning at `begin_index + step` resumes at the seed's step the same way. `begin_index` is read
        otherwise only by `add_noise`, which denoising never calls. DDIM is stateless (no step index).
        """
        sched = self.make_scheduler(seed.scheduler, seed.scheduler_config)
        sched.set_timesteps(seed.num_inference_steps)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(seed.begin_index + seed.step)
        if "model_outputs" in seed.scheduler_state:
            # DPM-Solver++'s multistep history has no setter in diffusers: its public attributes
            # `model_outputs` and `lower_order_nums` (reset by set_timesteps) are the least private route.
            sched.model_outputs = [None if t is None else t.to(self.device) for t in
                                   seed.scheduler_state["model_outputs"]]
            sched.lower_order_nums = int(seed.scheduler_state["lower_order_nums"])
        return sched

    @staticmethod
    def _scheduler_state(sched) -> dict[str, Any]:
        if hasattr(sched, "model_outputs"):
            return {"model_outputs": [None if t is None else t.detach().clone() for t in sched.model_outputs],
                    "lower_order_nums": int(sched.lower_order_nums)}
        return {}

    def resolve_timesteps(self, seed: Latent) -> Latent:
        """Rebuild the schedule of a seed that travelled without it (payloads carry only N and the begin index)."""
        if seed.timesteps is not None:
            return seed
        sched = self.make_scheduler(seed.scheduler, seed.scheduler_config)
        sched.set_timesteps(seed.num_inference_steps)
        timesteps = sched.timesteps[seed.begin_index:].clone()
        if seed.step > len(timesteps):
            raise InputError(f"seed at step {seed.step} but its schedule has {len(timesteps)} steps; "
                             f"sender and receiver disagree on the number of steps")
        return seed.replace(timesteps=timesteps)

    # ---- stages -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompt: str | list[str], guidance: float = 7.5,
                      negative_prompt: str = "") -> PromptCondition:
        """Text stage: CLIP embedding of the prompt (+ of the negative prompt when guidance > 1).

        A list of prompts gives one embedding per latent of a batch (same guidance and negative prompt).
        """
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt
                                            and all(isinstance(p, str) for p in prompt))):
            raise InputError("prompt must be a string or a non-empty list of strings")
        if not math.isfinite(guidance) or guidance < 0:
            raise InputError(f"guidance {guidance}: must be a finite number >= 0")

        def embed(text: str | list[str]) -> torch.Tensor:
            ids = self.tokenizer(text, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            return self.text_encoder(ids.to(self.device))[0].to(self.dtype)

        uncond = embed(negative_prompt) if guidance > 1.0 else None
        return PromptCondition(prompt, negative_prompt, float(guidance), embed(prompt), uncond)

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """VAE stage: image (B,3,H,W) in [0,1] -> scaled latent z0 (a sample of the VAE posterior, as diffusers)."""
        self._check_image(image)
        posterior = self.vae.encode(image.to(self.device, self.dtype) * 2 - 1).latent_dist
        return posterior.sample(generator) * self.scaling_factor

    @torch.no_grad()
    def start(self, cond: PromptCondition | None = None, image: torch.Tensor | None = None, strength: float = 0.75,
              steps: int = 20, generator: torch.Generator | Sequence[torch.Generator] | None = None,
              batch_size: int = 1) -> Latent | list[Latent]:
        """First stage: pure noise at step 0 (text-to-image) or the VAE-encoded image noised to `strength`.

        With one generator (or none): one seed holding `batch_size` latents (default: one per prompt of
        `cond`; image-to-image: one per image). With a list of generators, as diffusers' pipelines take them:
        one seed per generator, latent i drawn from generators[i] (the draws a batch of one makes), from one
        VAE encoding of the images (B, 3, H, W), or from noise when `image` is None.
        """
        if isinstance(generator, Sequence):
            generators = list(generator)
            if not generators:
                raise InputError("no generators; give one per latent")
            if image is not None and image.shape[0] != len(generators):
                raise InputError(f"{image.shape[0]} images for {len(generators)} generators; give one generator "
                                 f"per image")
            seed = self._start(cond, image, strength, steps, generators, len(generators))
            return [seed.replace(latents=seed.latents[i:i + 1]) for i in range(len(generators))]
        return self._start(cond, image, strength, steps, generator, batch_size)

    def _start(self, cond, image, strength, steps, generator, batch_size) -> Latent:
        from diffusers.utils.torch_utils import randn_tensor

        sched = self.make_scheduler()
        if cond is not None and isinstance(cond.prompt, list) and batch_size == 1:
            batch_size = len(cond.prompt)  # one latent per prompt
        if image is None:
            timesteps, begin = self.schedule(steps, 1.0)
            shape = (batch_size, self.latent_channels, *self.latent_size)
            latents = randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)
            latents = latents * sched.init_noise_sigma
            strength = 1.0
        else:
            timesteps, begin = self.schedule(steps, strength)
            z0 = self.encode_image(image, generator)
            noise = randn_tensor(z0.shape, generator=generator, device=self.device, dtype=self.dtype)
            sched.set_timesteps(steps)
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(begin)
            latents = sched.add_noise(z0, noise, timesteps[:1].repeat(z0.shape[0]))
        return Latent(latents=latents, step=0, timesteps=timesteps, num_inference_steps=steps, begin_index=begin,
                    strength=float(strength), guidance=cond.guidance if cond else 1.0,
                    prompt=cond.prompt if cond else "", scheduler=self.scheduler_name,
                    scheduler_config=dict(self.scheduler_config))

    @torch.no_grad()
    def denoise(self, seed: Latent | Sequence[Latent], cond: PromptCondition,
                until: int | Sequence[int | None] | None = None, region: Box | None = None,
                generator: torch.Generator | None = None) -> Latent | list[Latent]:
        """Denoising stage: run steps seed.step .. until-1 (None: to the end), on the tile `region` if given.

        A list of seeds is one batch: every step is one UNet call on the seeds that still have a step to run,
        seed i with its own schedule (a seed resumed channel-aware carries its own timesteps), its own
        scheduler and state, and its own target (`until`: one for all or one per seed); `cond` holds one
        embedding for all or one per latent. One seed is a batch of one, returned as a seed. The returned
        seeds continue on any machine with the same model: splitting a run at any step gives the same latent
        as running it whole.

        Float results: the elementwise parts (noising, guidance, scheduler steps) run on each seed's slice with
        the shapes of a one-seed run, so they are bit-identical given the same model outputs. The model calls
        are not, on a CPU: PyTorch's oneDNN convolutions and MKL GEMMs pick their algorithm by batch size, so
        a UNet output in a batch differs from the same seed alone by about 1e-6 and a decoded image by about
        1e-5 (benchmarks/bench_campaign.py measures it on whole runs). With a memo (`self.memo`) a batch seen
        before returns its kept result (meg_phy.memo).
        """
        single = isinstance(seed, Latent)
        seeds = [seed] if single else list(seed)
        if not seeds:
            raise InputError("no seeds to denoise; give at least one")
        targets = list(until) if isinstance(until, Sequence) else [until] * len(seeds)
        if len(targets) != len(seeds):
            raise InputError(f"{len(targets)} targets for {len(seeds)} seeds; give one target or one per seed")
        if self.memo is None:
            out = self._denoise(seeds, cond, targets, region, generator)
        else:
            from meg_phy.memo import memo_key

            key = memo_key("denoise", self.runtime, [[getattr(s, f.name) for f in dataclasses.fields(s)] for s in seeds],
                           cond.prompt, cond.negative_prompt, cond.guidance, cond.embeds, cond.uncond_embeds,
                           targets, region, None if generator is None else generator.get_state())
            out = self.memo.recall(key, lambda: self._denoise(seeds, cond, targets, region, generator), generator)
        return out[0] if single else out

    def _denoise(self, seeds: list[Latent], cond: PromptCondition, until: list[int | None], region: Box | None,
                 generator: torch.Generator | None) -> list[Latent]:
        seeds = [self.resolve_timesteps(s) for s in seeds]
        if region is not None:
            seeds = [s.crop(region) for s in seeds]
        targets = [s.total if t is None else int(t) for s, t in zip(seeds, until, strict=True)]
        for s, t in zip(seeds, targets, strict=True):
            if not s.step <= t <= s.total:
                raise InputError(f"denoise until step {t}: must be between the seed's step {s.step} "
                                 f"and its schedule length {s.total}")
            self._check_latent_size(s.latents.shape[-2:])
        rows = [int(s.latents.shape[0]) for s in seeds]
        offsets = [sum(rows[:i]) for i in range(len(rows))]
        if cond.embeds.shape[0] == 1:
            embeds = [cond.embeds.expand(r, -1, -1) for r in rows]
        elif cond.embeds.shape[0] == sum(rows):
            embeds = [cond.embeds[o:o + r] for o, r in zip(offsets, rows, strict=True)]
        else:
            raise InputError(f"{cond.embeds.shape[0]} prompt embeddings for {sum(rows)} latents; give one or "
                             f"one per latent")
        scheds = [self._scheduler_for(s) for s in seeds]
        latents = [s.latents.to(self.device, self.dtype) for s in seeds]
        steps = [s.step for s in seeds]
        extra = {"generator": generator} if generator is not None else {}
        while True:
            active = [i for i in range(len(seeds)) if steps[i] < targets[i]]
            if not active:
                break
            ts = [seeds[i].timesteps[steps[i]] for i in active]
            if cond.uses_guidance:  # diffusers' order: [uncond of every latent, cond of every latent]
                pairs = [scheds[i].scale_model_input(torch.cat([latents[i]] * 2), t)
                         for i, t in zip(active, ts, strict=True)]
                model_in = torch.cat([p[:rows[i]] for i, p in zip(active, pairs, strict=True)]
                                     + [p[rows[i]:] for i, p in zip(active, pairs, strict=True)])
                hidden = torch.cat([cond.uncond_embeds.expand(rows[i], -1, -1) for i in active]
                                   + [embeds[i] for i in active])
                t_in = torch.cat([t.reshape(1).expand(rows[i]) for i, t in zip(active, ts, strict=True)] * 2)
            else:
                model_in = torch.cat([scheds[i].scale_model_input(latents[i], t) for i, t in zip(active, ts, strict=True)])
                hidden = torch.cat([embeds[i] for i in active])
                t_in = torch.cat([t.reshape(1).expand(rows[i]) for i, t in zip(active, ts, strict=True)])
            if len(active) == 1:
                t_in = ts[0]  # one schedule: the timestep as diffusers' pipelines pass it
            unet = self._onnx_unet if self.runtime == "onnx" else self.unet
            out = unet(model_in, t_in, encoder_hidden_states=hidden).sample.to(model_in)
            half = sum(rows[i] for i in active)
            at = 0
            for i, t in zip(active, ts, strict=True):
                pred = out[at:at + rows[i]]
                if cond.uses_guidance:
                    text = out[half + at:half + at + rows[i]]
                    pred = pred + cond.guidance * (text - pred)
                at += rows[i]
                latents[i] = scheds[i].step(pred, t, latents[i], **extra).prev_sample
                steps[i] += 1
        per_seed = isinstance(cond.prompt, list) and len(cond.prompt) == len(seeds) and all(r == 1 for r in rows)
        prompts = cond.prompt if per_seed else [cond.prompt] * len(seeds)
        return [s.replace(latents=latents[i], step=targets[i], scheduler_state=self._scheduler_state(scheds[i]),
                          guidance=cond.guidance, prompt=prompts[i]) for i, s in enumerate(seeds)]

    @torch.no_grad()
    def decode(self, seed: Latent | Sequence[Latent] | torch.Tensor) -> torch.Tensor:
        """VAE decoding stage: latents -> images (B,3,H,W) in [0,1], one VAE call for a list of seeds. Decodes
        whatever noise is left."""
        if isinstance(seed, torch.Tensor):
            latents = seed
        elif isinstance(seed, Latent):
            latents = seed.latents
        else:
            latents = torch.cat([s.latents for s in seed])
        image = self.vae.decode(latents.to(self.device, self.dtype) / self.scaling_factor).sample
        return (image.float() / 2 + 0.5).clamp(0, 1)

    def generate(self, prompt: str, image: torch.Tensor | None = None, strength: float = 0.75, steps: int = 20,
                 guidance: float = 7.5, generator: torch.Generator | None = None,
                 negative_prompt: str = "") -> torch.Tensor:
        """The unsplit run: all stages on one machine."""
        cond = self.encode_prompt(prompt, guidance, negative_prompt)
        seed = self.start(cond, image=image, strength=strength, steps=steps, generator=generator)
        return self.decode(self.denoise(seed, cond))

    # ---- checks -----------------------------------------------------------------------------------------
    def _check_image(self, image: Any) -> None:
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
            raise InputError("image must be a float tensor (B, 3, H, W) in [0, 1]; use meg_phy.images.load_image")
        multiple = self.vae_scale_factor * self.unet_multiple
        if image.shape[-2] % multiple or image.shape[-1] % multiple:
            raise InputError(f"image of {image.shape[-2]}x{image.shape[-1]} pixels: sides must be multiples of "
                             f"{multiple}; resize it to {self.resolution[0]}x{self.resolution[1]} "
                             f"(meg_phy.images.load_image does)")

    def _check_latent_size(self, size) -> None:
        if size[0] % self.unet_multiple or size[1] % self.unet_multiple:
            raise InputError(f"latent tile of {size[0]}x{size[1]}: sides must be multiples of {self.unet_multiple} "
                             f"(the UNet's downsampling); use meg_phy.tiles.tile_layout(multiple={self.unet_multiple})")

    def describe(self) -> dict[str, Any]:
        """What a results file records about the model."""
        return {"path": str(self.path) if self.path else None, "scheduler": self.scheduler_name,
                "default_guidance": self.default_guidance,
                "resolution": list(self.resolution), "latent_shape": [self.latent_channels, *self.latent_size],
                "vae_scale_factor": self.vae_scale_factor, "device": str(self.device), "dtype": str(self.dtype)}


def load_ldm(path: str | Path | None = None, device: str | torch.device | None = None,
             scheduler: str = "ddim", dtype: torch.dtype | None = None) -> SplitLDM:
    """Load a local SD 1.x/2.x diffusers folder (None: the embedded default model) as a SplitLDM. No network."""
    from meg_phy.models import DEFAULT_MODEL_DIR

    folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not folder.is_dir():
        if path is None:
            raise InputError(f"the embedded default model is missing ({folder}); reinstall meg-phy, rebuild it with "
                             f"`meg-phy train`, or pass --model PATH to a Stable-Diffusion diffusers folder")
        raise InputError(f"model folder {folder} does not exist; pass a Stable-Diffusion diffusers folder")
    missing = [name for name in LAYOUT if not (folder / name).exists()]
    if missing:
        raise InputError(f"model folder {folder} lacks {', '.join(missing)}; expected a Stable-Diffusion diffusers "
                         f"folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
    if scheduler not in SCHEDULERS:
        raise InputError(f"scheduler '{scheduler}' is not supported; choose one of {', '.join(SCHEDULERS)}")
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or torch.float32
    _quiet_libraries()
    index = _read_json(folder / "model_index.json")
    components = {name: _load_component(folder, index, name) for name in COMPONENTS}
    try:
        scheduler_config = scheduler_class(scheduler).load_config(folder, subfolder="scheduler",
                                                                  local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"model folder {folder}: cannot read scheduler/scheduler_config.json "
                         f"({_first_line(exc)})") from None
    unet, vae, text_encoder = components["unet"], components["vae"], components["text_encoder"]
    if unet.config.in_channels != vae.config.latent_channels:
        raise InputError(f"model folder {folder}: unet takes {unet.config.in_channels} channels but the vae makes "
                         f"{vae.config.latent_channels}; the components do not belong together")
    if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
        raise InputError(f"model folder {folder}: unet cross-attention dim {unet.config.cross_attention_dim} != "
                         f"text encoder width {text_encoder.config.hidden_size}")
    for module in (unet, vae, text_encoder):
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    ldm = SplitLDM(unet, vae, text_encoder, components["tokenizer"], scheduler_config, scheduler=scheduler,
                   device=device, path=folder)
    defaults = _read_json(folder / DEFAULTS_FILE) if (folder / DEFAULTS_FILE).is_file() else {}
    guidance = defaults.get("guidance", EMBEDDED_GUIDANCE if is_default_model(ldm) else SD_GUIDANCE)
    if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
        raise InputError(f"{folder / DEFAULTS_FILE}: guidance must be a number >= 0")
    ldm.default_guidance = float(guidance)
    return ldm


def scheduler_class(name: str):
    """The diffusers scheduler class of a supported scheduler name."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if name not in SCHEDULERS:
        raise InputError(f"scheduler '{name}' is not supported; choose one of {', '.join(SCHEDULERS)}")
    classes = (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler)
    return {cls.__name__: cls for cls in classes}[SCHEDULERS[name]]


def _load_component(folder: Path, index: dict[str, Any], name: str):
    """One component through its own class's `from_pretrained` (local files, safetensors weights only).

    The class must be one of COMPONENTS[name]: a model_index.json naming another library or class is refused
    before anything is imported, so a model folder cannot make meg-phy run code; no pickled .bin weights.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer, CLIPTokenizerFast

    entry = index.get(name)
    if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)):
        raise InputError(f"{folder / 'model_index.json'}: no [library, class] entry for '{name}'")
    allowed = COMPONENTS[name]
    if tuple(entry) not in allowed:
        expected = " or ".join(".".join(pair) for pair in allowed)
        raise InputError(f"model folder {folder}: {name} class {'.'.join(entry)} is not supported; a Stable-Diffusion "
                         f"1.x/2.x folder names {expected} in model_index.json")
    cls = {c.__name__: c for c in (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer,
                                    CLIPTokenizerFast)}[entry[1]]
    kwargs: dict[str, Any] = {"subfolder": name, "local_files_only": True}
    if name != "tokenizer":
        if not any((folder / name).glob("*.safetensors")):
            raise InputError(f"model folder {folder}: {name}/ has no .safetensors weights (pickled .bin weights "
                             f"are not read); convert them with diffusers/transformers save_pretrained")
        kwargs["use_safetensors"] = True
    try:
        return cls.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise InputError(f"model folder {folder}: cannot load {name}/ ({_first_line(exc)}); "
                         f"check the files there") from None


def is_default_model(ldm: SplitLDM) -> bool:
    from meg_phy.models import DEFAULT_MODEL_DIR

    return ldm.path is not None and Path(ldm.path).resolve() == DEFAULT_MODEL_DIR.resolve()


# ---- helpers ------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _quiet_libraries() -> None:
    """Loading is silent: no progress bars or advice from diffusers/transformers in a CLI's output."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().tolist(), "dtype": str(value.dtype).removeprefix("torch."),
                "shape": list(value.shape)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict) and "__tensor__" in value:
        dtype = getattr(torch, value["dtype"])
        return torch.tensor(value["__tensor__"], dtype=dtype).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value
