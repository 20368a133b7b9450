"""Training of the embedded model, stage by stage, resumable from what is in `--out`.

Stages run in order: the evaluator (so the later stages can measure themselves), the VAE, then the UNet
and text encoder together on cached latents, then export of the diffusers folder. Each stage keeps one
checkpoint (`checkpoints/<stage>.safetensors`: tensors, with counters and optimiser settings as JSON in its
metadata and in `<stage>.json`; no pickle), written atomically every few minutes and at its end; running the
same command again skips finished stages and continues an interrupted one from its checkpoint, with its
time budget counting the time already spent.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from meg_common.config import ConfigMixin
from meg_common.io import atomic_write_json, read_json
from meg_phy.training import components
from meg_phy.training.checkpoint import load_checkpoint, save_checkpoint
from meg_phy.training.data import HELD_OUT_SEED, held_out_scenes, training_set

STAGES = ("evaluator", "vae", "evaluator_tune", "unet", "export")
EVALUATOR_SEED_BASE = 20_000_000  # jitter seeds of the evaluator's on-the-fly training scenes


@dataclass
class TrainConfig(ConfigMixin):
    out: Path
    stages: tuple[str, ...] = STAGES
    images: int = 36_000  # fixed training set: 360 combinations x 100 jitter seeds
    seed: int = 0
    evaluator_minutes: float = 4.0
    evaluator_steps: int | None = None
    evaluator_batch: int = 128
    evaluator_tune_minutes: float = 3.0
    vae_minutes: float = 14.0
    vae_steps: int | None = None
    vae_batch: int = 64
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    unet_minutes: float = 65.0
    unet_steps: int | None = None
    unet_batch: int = 256
    unet_lr: float = 1e-3
    unet_warmup: int = 200  # steps of linear learning-rate warm-up
    prompt_dropout: float = 0.1
    ema_decay: float = 0.999
    eval_every_minutes: float = 5.0
    eval_prompts: int = 32
    eval_guidance: float = 4.0
    eval_steps: int = 20
    target_accuracy: float | None = 0.97  # stop the UNet early after two evaluations at or above it
    checkpoint_every_minutes: float = 3.0
    log_every: int = 20  # steps per logged mean loss
    threads: int | None = 2
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        d["stages"] = list(self.stages)
        return d


def train(config: TrainConfig) -> dict:
    """Run the requested stages; returns the training log (also in OUT/train_log.json)."""
    if config.threads and config.device == "cpu":
        torch.set_num_threads(config.threads)
    torch.set_flush_denormal(True)  # denormal weights/activations slow CPU kernels by orders of magnitude
    out = Path(config.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.json"
    log = read_json(log_path) if log_path.exists() else {"config": config.to_json(), "stages": {}}
    log["config"] = config.to_json()
    trainer = _Trainer(config, out, log)
    for stage in STAGES:
        if stage in config.stages:
            getattr(trainer, f"stage_{stage}")()
            trainer.save_log()
    return log


class _Trainer:
    def __init__(self, config: TrainConfig, out: Path, log: dict):
        self.c, self.out, self.log = config, out, log
        self.device = torch.device(config.device)
        self._data = None

    # ---- bookkeeping -------------------------------------------------------------------------------
    def save_log(self) -> None:
        atomic_write_json(self.out / "train_log.json", self.log)
        try:
            from meg_phy.training.report import plot_curves

            plot_curves(self.log, self.out / "curves.png")
        except Exception as exc:  # a plot must never stop training
            print(f"[train] could not plot curves: {exc}", file=sys.stderr)

    def ckpt_path(self, stage: str) -> Path:
        return self.out / "checkpoints" / f"{stage}.safetensors"

    def load_ckpt(self, stage: str) -> dict | None:
        return load_checkpoint(self.ckpt_path(stage))

    def save_ckpt(self, stage: str, state: dict) -> None:
        save_checkpoint(self.ckpt_path(stage), state)

    def stage_log(self, stage: str) -> dict:
        return self.log["stages"].setdefault(stage, {"loss": [], "eval": []})

    def data(self):
        if self._data is None:
            t0 = time.perf_counter()
            with tqdm(total=self.c.images, desc="render training set", unit="img", file=sys.stderr,
                      leave=False) as bar:
                self._data = training_set(self.c.images, self.c.seed, chunk_callback=bar.update)
            print(f"[train] rendered {self.c.images} training scenes in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        return self._data

    def _loop(self, stage: str, state: dict, minutes: float, max_steps: int | None, step_fn, snapshot,
              on_eval=None, eval_every_s: float | None = None) -> dict:
        """Shared timed loop: run step_fn(step) -> loss until the budget, checkpoint and evaluate on time.

        `snapshot()` copies the live model/optimizer states into `state` right before it is saved.
        """
        slog = self.stage_log(stage)
        budget = minutes * 60
        start = time.perf_counter() - state["elapsed_s"]
        last_ckpt = time.perf_counter()
        last_eval = state.get("last_eval_s", 0.0)
        running, count = 0.0, 0
        bar = tqdm(desc=stage, unit="step", file=sys.stderr, initial=state["step"],
                   total=max_steps, mininterval=2.0)
        stop = False
        try:
            while not stop:
                elapsed = time.perf_counter() - start
                if (max_steps is not None and state["step"] >= max_steps) or (max_steps is None and elapsed >= budget):
                    break
                state["progress"] = state["step"] / max_steps if max_steps is not None else elapsed / budget
                loss = step_fn(state["step"])
                state["step"] += 1
                running += loss
                count += 1
                bar.update(1)
                if count == self.c.log_every or state["step"] == max_steps:
                    slog["loss"].append([state["step"], round(time.perf_counter() - start, 1), running / count])
                    bar.set_postfix(loss=f"{running / count:.4f}", min=f"{(time.perf_counter() - start) / 60:.1f}")
                    running, count = 0.0, 0
                elapsed = time.perf_counter() - start
                if on_eval and eval_every_s and elapsed - last_eval >= eval_every_s:
                    last_eval = elapsed
                    state["last_eval_s"] = last_eval
                    stop = on_eval(state, elapsed)
                if time.perf_counter() - last_ckpt >= self.c.checkpoint_every_minutes * 60:
                    state["elapsed_s"] = time.perf_counter() - start
                    snapshot()
                    self.save_ckpt(stage, state)
                    self.save_log()
                    last_ckpt = time.perf_counter()
        finally:
            bar.close()
        state["elapsed_s"] = time.perf_counter() - start
        return state

    # ---- stage 1: evaluator ------------------------------------------------------------------------
    def stage_evaluator(self) -> None:
        """Train the evaluator on clean renders with noise/blur/colour augmentation."""
        self._train_evaluator("evaluator", None, self.c.evaluator_minutes, self.c.evaluator_steps, lr=2e-3)

    def stage_evaluator_tune(self) -> None:
        """Continue the evaluator on a mix of renders and their VAE reconstructions.

        Generated images all pass through the VAE decoder, whose output blurs the corners of small shapes;
        reading those is what the evaluator is for, so it learns them from reconstructions (labels from
        the rendered scene).
        """
        self._train_evaluator("evaluator_tune", "evaluator", self.c.evaluator_tune_minutes,
                              self.c.evaluator_steps, lr=5e-4, vae=self.load_vae())

    def _train_evaluator(self, stage: str, start_from: str | None, minutes: float, steps: int | None, lr: float,
                         vae=None) -> None:
        from meg_phy.evaluator import AttributeClassifier, Evaluator, save_evaluator
        from meg_phy.scenes import ATTRIBUTES, render_batch, sample_attributes

        state = self.load_ckpt(stage)
        if state and state.get("done"):
            print(f"[train] {stage}: done (checkpoint found)", file=sys.stderr)
            return
        torch.manual_seed(self.c.seed)
        model = AttributeClassifier(ATTRIBUTES).to(self.device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        if state:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
        else:
            if start_from:
                previous = self.load_ckpt(start_from)
                if not previous or not previous.get("done"):
                    from meg_common.errors import InputError

                    raise InputError(f"{self.out}: stage {start_from} is not finished; run it first")
                model.load_state_dict(previous["model"])
            state = {"step": 0, "elapsed_s": 0.0}
        batch = self.c.evaluator_batch
        names = list(ATTRIBUTES)
        seed_base = EVALUATOR_SEED_BASE + (5_000_000 if vae is not None else 0)
        pool = self.reconstruction_pool(vae) if vae is not None else None

        def step_fn(step: int) -> float:
            gen = torch.Generator().manual_seed(self.c.seed * 1_000_003 + step + (7 if vae is not None else 0))
            attrs = sample_attributes(gen, batch)
            seeds = [seed_base + step * batch + i for i in range(batch)]
            images = render_batch(attrs, seeds)
            if pool is not None:  # half the batch: VAE reconstructions with their scenes' labels
                pick = torch.randint(len(pool[0]), (batch // 2,), generator=gen).tolist()
                images[: batch // 2] = pool[0][pick]
                attrs[: batch // 2] = [pool[1][i] for i in pick]
            images = augment(images, gen).to(self.device)
            model.train()
            logits = model(images)
            loss = sum(F.cross_entropy(logits[n], torch.tensor([ATTRIBUTES[n].index(a[n]) for a in attrs],
                                                                device=self.device)) for n in names)
            for group in opt.param_groups:
                group["lr"] = lr * cosine(state["progress"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss.detach())

        def checkpoint_state():
            state["model"], state["opt"] = model.state_dict(), opt.state_dict()
            return state

        self._loop(stage, state, minutes, steps, step_fn, checkpoint_state)
        model.eval().cpu()
        accuracy = attribute_accuracy(Evaluator(model), 1000)
        self.stage_log(stage)["held_out"] = accuracy
        print(f"[train] {stage}: held-out clean accuracy {accuracy}", file=sys.stderr)
        save_evaluator(model, self.out / "evaluator")
        if vae is not None:
            quality = self.vae_quality(vae)
            self.stage_log(stage)["vae_reconstructions"] = quality
            print(f"[train] {stage}: on VAE reconstructions {quality}", file=sys.stderr)
        state.update(model=model.state_dict(), opt=opt.state_dict(), done=True)
        model.to(self.device)
        self.save_ckpt(stage, state)

    # ---- stage 2: VAE --------------------------------------------------------------------------------
    def stage_vae(self) -> None:
        state = self.load_ckpt("vae")
        if state and state.get("done"):
            print("[train] vae: done (checkpoint found)", file=sys.stderr)
            return
        torch.manual_seed(self.c.seed + 1)
        vae = components.build_vae().to(self.device)
        opt = torch.optim.AdamW(vae.parameters(), lr=self.c.vae_lr, weight_decay=0.0)
        if state:
            vae.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
        else:
            state = {"step": 0, "elapsed_s": 0.0}
        images, _, _ = self.data()
        n, batch = len(images), min(self.c.vae_batch, len(images))

        def step_fn(step: int) -> float:
            gen = torch.Generator().manual_seed(self.c.seed * 7919 + step)
            x = images[torch.randint(n, (batch,), generator=gen)].to(self.device) * 2 - 1
            vae.train()
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample(generator=None)).sample
            loss_rec = F.mse_loss(rec, x)
            loss = loss_rec + self.c.vae_kl_weight * post.kl().mean()
            for group in opt.param_groups:
                group["lr"] = self.c.vae_lr * cosine(state["progress"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            return float(loss_rec.detach())

        def checkpoint_state():
            state["model"], state["opt"] = vae.state_dict(), opt.state_dict()
            return state

        self._loop("vae", state, self.c.vae_minutes, self.c.vae_steps, step_fn, checkpoint_state)
        vae.eval()
        with torch.no_grad():
            sample = images[torch.randperm(n, generator=torch.Generator().manual_seed(5))[:2048]].to(self.device)
            latents = torch.cat([vae.encode(x * 2 - 1).latent_dist.mode() for x in sample.split(256)])
            scaling = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=round(scaling, 5))
        quality = self.vae_quality(vae)
        self.stage_log("vae").update(scaling_factor=vae.config.scaling_factor, **quality)
        print(f"[train] vae: scaling factor {vae.config.scaling_factor}, {quality}", file=sys.stderr)
        state.update(model=vae.state_dict(), opt=opt.state_dict(), done=True,
                     scaling_factor=vae.config.scaling_factor)
        self.save_ckpt("vae", state)

    @torch.no_grad()
    def reconstruction_pool(self, vae, n: int = 8192) -> tuple[torch.Tensor, list[dict]]:
        """VAE reconstructions (sampled latents) of the first `n` training scenes, with their attributes."""
        from meg_phy.scenes import all_combinations

        images, _, prompt_index = self.data()
        combos = all_combinations()
        n = min(n, len(images))
        generator = torch.Generator().manual_seed(self.c.seed + 3)
        recs = []
        for x in tqdm(images[:n].split(256), desc="reconstruct pool", file=sys.stderr, leave=False):
            posterior = vae.encode(x.to(self.device) * 2 - 1).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(self.device)
            recs.append(((vae.decode(z).sample + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(recs), [combos[i] for i in prompt_index[:n].tolist()]

    def load_vae(self):
        state = self.load_ckpt("vae")
        if not state or not state.get("done"):
            from meg_common.errors import InputError

            raise InputError(f"{self.out}: the VAE is not trained yet; run with --stage vae (or all) first")
        vae = components.build_vae()
        vae.load_state_dict(state["model"])
        vae.register_to_config(scaling_factor=state["scaling_factor"])
        return vae.to(self.device).eval()

    def load_trained_evaluator(self):
        from meg_phy.evaluator import load_evaluator

        return load_evaluator(self.out / "evaluator")

    @torch.no_grad()
    def vae_quality(self, vae, n: int = 512) -> dict:
        """PSNR of reconstructions of held-out scenes and how often the evaluator reads them correctly."""
        from meg_phy.scenes import render_batch

        attrs, seeds = held_out_scenes(n, offset=500_000)
        clean = render_batch(attrs, seeds)
        rec = torch.cat([((vae.decode(vae.encode(x.to(self.device) * 2 - 1).latent_dist.mode()).sample + 1) / 2)
                         .clamp(0, 1).cpu() for x in clean.split(256)])
        mse = F.mse_loss(rec, clean, reduction="none").mean(dim=(1, 2, 3))
        result = {"recon_psnr_db": round(float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()), 2)}
        if (self.out / "evaluator").exists():
            ev = self.load_trained_evaluator()
            readings = ev.read(rec)
            result["recon_prompt_accuracy"] = sum(r == a for r, a in zip(readings, attrs, strict=True)) / n
        return result

    # ---- stage 3: UNet + text encoder ---------------------------------------------------------------
    def stage_unet(self) -> None:
        state = self.load_ckpt("unet")
        if state and state.get("done"):
            print("[train] unet: done (checkpoint found)", file=sys.stderr)
            return
        vae = self.load_vae()
        tokenizer = components.build_tokenizer()
        torch.manual_seed(self.c.seed + 2)
        unet = components.build_unet().to(self.device)
        text_encoder = components.build_text_encoder(len(tokenizer)).to(self.device)
        params = list(unet.parameters()) + list(text_encoder.parameters())
        opt = torch.optim.AdamW(params, lr=self.c.unet_lr, betas=(0.9, 0.99), weight_decay=0.01)
        ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
        if state:
            unet.load_state_dict(state["unet"])
            text_encoder.load_state_dict(state["text_encoder"])
            ema_unet.load_state_dict(state["ema_unet"])
            ema_text.load_state_dict(state["ema_text"])
            opt.load_state_dict(state["opt"])
        else:
            state = {"step": 0, "elapsed_s": 0.0, "good_evals": 0}
        latents, prompt_index = self.cached_latents(vae)
        _, prompts, _ = self.data()
        ids = tokenizer(prompts + [""], padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(self.device)
        empty = len(prompts)
        scheduler = components.build_train_scheduler()
        alphas = scheduler.alphas_cumprod.to(self.device)
        n, batch = len(latents), min(self.c.unet_batch, len(latents))
        warmup = max(1, self.c.unet_warmup)

        def step_fn(step: int) -> float:
            gen = torch.Generator().manual_seed(self.c.seed * 104_729 + step)
            pick = torch.randint(n, (batch,), generator=gen)
            z0 = latents[pick].to(self.device)
            cond = prompt_index[pick].clone()
            cond[torch.rand(batch, generator=gen) < self.c.prompt_dropout] = empty
            t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=gen).to(self.device)
            noise = torch.randn(z0.shape, generator=gen).to(self.device)
            a = alphas[t].view(-1, 1, 1, 1)
            zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
            unet.train()
            text_encoder.train()
            hidden = text_encoder(ids).last_hidden_state[cond.to(self.device)]
            pred = unet(zt, t, hidden).sample
            loss = F.mse_loss(pred, noise)
            for group in opt.param_groups:
                group["lr"] = self.c.unet_lr * min(1.0, (step + 1) / warmup) * cosine(state["progress"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            decay = min(self.c.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for ema, live in ((ema_unet, unet), (ema_text, text_encoder)):
                    for pe, pl in zip(ema.parameters(), live.parameters(), strict=True):
                        pe.lerp_(pl, 1 - decay)
            return float(loss.detach())

        evaluator = self.load_trained_evaluator()
        eval_attrs, _ = held_out_scenes(self.c.eval_prompts, offset=900_000)

        def on_eval(st: dict, elapsed: float) -> bool:
            from meg_phy.scenes import make_prompt

            result = self.score(ema_unet, vae, ema_text, tokenizer, evaluator,
                                [make_prompt(a) for a in eval_attrs], seed=st["step"])
            result.update(step=st["step"], minutes=round(elapsed / 60, 2))
            self.stage_log("unet")["eval"].append(result)
            print(f"\n[train] unet eval @ step {st['step']} ({elapsed / 60:.1f} min): prompt accuracy "
                  f"{result['prompt_accuracy']:.3f} {result['per_attribute']}", file=sys.stderr, flush=True)
            target = self.c.target_accuracy
            st["good_evals"] = st.get("good_evals", 0) + 1 if target and result["prompt_accuracy"] >= target else 0
            self.save_log()
            return st["good_evals"] >= 2

        def checkpoint_state():
            state.update(unet=unet.state_dict(), text_encoder=text_encoder.state_dict(), opt=opt.state_dict(),
                         ema_unet=ema_unet.state_dict(), ema_text=ema_text.state_dict())
            return state

        self._loop("unet", state, self.c.unet_minutes, self.c.unet_steps, step_fn, checkpoint_state, on_eval,
                   self.c.eval_every_minutes * 60)
        checkpoint_state()
        state["done"] = True
        self.save_ckpt("unet", state)

    def cached_latents(self, vae) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled VAE latents of the training set (computed once, saved next to the checkpoints)."""
        path = self.out / "checkpoints" / "latents.safetensors"
        cached = load_checkpoint(path)
        if cached is not None:
            if cached["scaling_factor"] == vae.config.scaling_factor and len(cached["latents"]) == self.c.images:
                return cached["latents"], cached["prompt_index"]
        images, _, prompt_index = self.data()
        with torch.no_grad():
            latents = torch.cat([vae.encode(x.to(self.device) * 2 - 1).latent_dist.mode().cpu()
                                 for x in tqdm(images.split(512), desc="encode latents", file=sys.stderr, leave=False)])
        latents = latents * vae.config.scaling_factor
        save_checkpoint(path, {"latents": latents, "prompt_index": prompt_index,
                               "scaling_factor": vae.config.scaling_factor})
        return latents, prompt_index

    @torch.no_grad()
    def score(self, unet, vae, text_encoder, tokenizer, evaluator, prompts: list[str], seed: int) -> dict:
        from meg_phy.ldm import SplitLDM

        ldm = SplitLDM(unet, vae, text_encoder, tokenizer, components.build_inference_scheduler().config,
                       device=self.device)
        cond = ldm.encode_prompt(prompts, self.c.eval_guidance)
        start = ldm.start(cond, steps=self.c.eval_steps, generator=torch.Generator().manual_seed(HELD_OUT_SEED + seed))
        images = ldm.decode(ldm.denoise(start, cond)).cpu()
        return prompt_scores(evaluator, images, prompts)

    # ---- stage 4: export -----------------------------------------------------------------------------
    def stage_export(self) -> None:
        from meg_phy.training.export import save_pipeline_folder

        state = self.load_ckpt("unet")
        if not state or not state.get("done"):
            from meg_common.errors import InputError

            raise InputError(f"{self.out}: the UNet is not trained yet; run with --stage unet (or all) first")
        tokenizer = components.build_tokenizer()
        unet = components.build_unet()
        unet.load_state_dict(state["ema_unet"])
        text_encoder = components.build_text_encoder(len(tokenizer))
        text_encoder.load_state_dict(state["ema_text"])
        folder = save_pipeline_folder(self.out / "model", self.load_vae().cpu(), text_encoder, tokenizer, unet)
        self.log["stages"]["export"] = {"folder": str(folder)}
        print(f"[train] wrote the diffusers folder {folder} and the evaluator {self.out / 'evaluator'}",
              file=sys.stderr)


def cosine(progress: float, floor: float = 0.05) -> float:
    """Learning-rate factor: half a cosine from 1 to `floor` over the stage's budget (time or steps)."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Noise, blur and colour shifts like those in generated images, so the evaluator reads them too."""
    b = len(images)
    x = images.clone()
    blur = torch.rand(b, generator=gen) < 0.4
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    gain = 1 + 0.06 * (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1)
    shift = 0.04 * (torch.rand(b, 3, 1, 1, generator=gen) * 2 - 1)
    sigma = 0.06 * torch.rand(b, 1, 1, 1, generator=gen)
    x = x * gain + shift + sigma * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def prompt_scores(evaluator, images: torch.Tensor, prompts: list[str]) -> dict:
    """Prompt accuracy (all attributes right) and per-attribute accuracy of images against prompts."""
    from meg_phy.scenes import parse_prompt

    readings = evaluator.read(images)
    wanted = [parse_prompt(p) for p in prompts]
    names = list(evaluator.attributes)
    per = {n: sum(r[n] == w[n] for r, w in zip(readings, wanted, strict=True) if n in w) /
           max(1, sum(n in w for w in wanted)) for n in names}
    matches = [all(r.get(k) == v for k, v in w.items()) for r, w in zip(readings, wanted, strict=True)]
    return {"prompt_accuracy": sum(matches) / len(matches), "attribute_accuracy": sum(per.values()) / len(per),
            "per_attribute": {k: round(v, 4) for k, v in per.items()}, "n": len(prompts), "matches": matches,
            "readings": readings}


def attribute_accuracy(evaluator, n: int) -> dict:
    """Per-attribute accuracy of the evaluator on `n` clean held-out renders."""
    from meg_phy.scenes import render_batch

    attrs, seeds = held_out_scenes(n)
    readings = evaluator.read(render_batch(attrs, seeds))
    per = {name: sum(r[name] == a[name] for r, a in zip(readings, attrs, strict=True)) / n
           for name in evaluator.attributes}
    return {"per_attribute": per, "min": min(per.values()), "n": n,
            "all_correct": sum(r == a for r, a in zip(readings, attrs, strict=True)) / n}

