"""The blocks a protocol is made of, for a batch of tasks: generation stages on a node, payload transfers
between nodes.

`Stages(graphs, tasks)` binds one run ledger per task (flowgraphs.ledger.RunLedger) to its task; a batch of
one is an ordinary run. A protocol module is written once against it, and every value it passes around
carries the batch: prompts and latents as per-task lists, images and prompt conditions as tensors with one
row per task, noise variances as `PerTask` lists. Every method names the node it runs on:

- generation stages (`start`, `denoise`, `decode`, `sketch`, `complete`, ...) are one model call for the
  batch (meg_phy.ldm.SplitLDM takes lists), on the node's model (`placement`: this process, or the ES's
  Ray actor); each task draws from its own generator and keeps its own schedule, and is accounted its own
  denoising steps and work and an equal share of the wall time (a memo hit counts the seconds it saves);
- transfers (`send_prompt`, `send_image`, `send_latent`, `upload_*`) encode one payload per task with
  meg_phy.codecs, open that task's hop (or broadcast) on its own ledger, and hand the payloads to the hop
  layer together (flowgraphs.hops.send_bytes_together: one batched link call per round where the link
  can, one by one where it cannot); what arrived is decoded per task. `resume` makes a received latent
  usable (channel-aware or naive);
- joint tiled denoising (`st.joint`: `start`, `denoise`, `decode_tile`): the parallel protocols' ESs each
  advance their own tile of one latent and exchange tiles over backhaul (flowgraphs.joint).
When a digital payload is still corrupt after its last attempt the receiver carries on with the best it has
(a prompt-less generation, a fresh-noise latent, a grey image) and the hop says `delivered: false`, so
quality drops visibly instead of the run crashing or pretending.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from flowgraphs.hops import broadcast_bytes, broadcast_values
from flowgraphs.joint import JointDenoiser
from flowgraphs.ledger import RunLedger
from flowgraphs.task import Task
from flowgraphs.transfer import Budget, LostContext, transfer_for
from meg_common.errors import InputError
from meg_phy.images import resize


class PerTask(list):
    """One number per task (a noise variance), as a protocol passes it around: `sum(values) / n` over ESs
    works task by task, as it does on numbers."""

    def __add__(self, other):
        return PerTask(a + b for a, b in zip(self, other, strict=True)) if isinstance(other, list) else \
            PerTask(a + other for a in self)

    def __radd__(self, other):
        return self.__add__(other)

    def __truediv__(self, other):
        return PerTask(a / other for a in self)


class Tasks:
    """The tasks of a batch as a protocol sees `st.task`: prompts as a list, images as one tensor (or None)."""

    def __init__(self, tasks: Sequence[Task]):
        self.tasks = list(tasks)
        for name in ("steps", "strength", "guidance", "ldm"):
            values = [getattr(t, name) for t in self.tasks]
            if any(v is not values[0] and v != values[0] for v in values[1:]):
                raise InputError(f"the tasks of a batch differ in {name!r}; batch tasks that share it")
        self.steps, self.strength, self.guidance = self.tasks[0].steps, self.tasks[0].strength, self.tasks[0].guidance
        self.ldm = self.tasks[0].ldm

    @property
    def prompt(self) -> list[str]:
        return [t.prompt for t in self.tasks]

    @property
    def image(self) -> torch.Tensor | None:
        """(B, 3, H, W), or None for text-to-image tasks."""
        return stack_images([t.image for t in self.tasks])

    def __len__(self) -> int:
        return len(self.tasks)


class Ledgers:
    """The tasks' ledgers as a protocol sees `st.g`: the node names, one set for the batch."""

    def __init__(self, graphs: Sequence[RunLedger]):
        self.graphs = list(graphs)
        self.config = self.graphs[0].config
        self.nodes = self.graphs[0].nodes

    @property
    def es(self) -> list[str]:
        return self.nodes[1:]


class Stages:
    """Generation stages and payload transfers of a batch of runs, each accounted on its task's ledger."""

    def __init__(self, graphs: Sequence[RunLedger] | RunLedger, tasks: Sequence[Task] | Task, placement=None):
        """One ledger per task (a single ledger and task: a batch of one); `placement`: where the ESs' model
        calls run (flowgraphs.placement; None: in this process)."""
        from flowgraphs.placement import LOCAL

        graphs = [graphs] if isinstance(graphs, RunLedger) else list(graphs)
        tasks = [tasks] if isinstance(tasks, Task) else list(tasks)
        if not graphs or len(graphs) != len(tasks):
            raise InputError(f"{len(graphs)} ledgers for {len(tasks)} tasks; give one of each per task")
        self.graphs = graphs
        self.g = Ledgers(graphs)
        self.task = Tasks(tasks)
        self.cfg = graphs[0].config
        self.ldm = self.task.ldm
        self.placement = placement or LOCAL
        self.placement.prepare(self.g.es, self.ldm)
        self.n_steps = len(self.ldm.schedule(self.task.steps, self.task.strength)[0])
        """Denoising steps of the img2img task (diffusers runs steps * strength of the schedule)."""
        self.joint = JointDenoiser(self)
        """Joint tiled denoising of the parallel protocols (flowgraphs.joint)."""

    def __len__(self) -> int:
        return len(self.graphs)

    # --- where the work is split and who computes ------------------------------------------------------
    def split_step(self) -> int:
        """The step at which a latent changes hands (config `split`)."""
        return round(self.n_steps * self.cfg.split)

    def share(self, latents: list, servers_left: int) -> list[int]:
        """Where this ES of a cooperative chain stops, per task: an equal share of the steps still to run
        (recomputed at every ES, because channel-aware resume may lengthen the remaining schedule)."""
        return [z.step + -(-(z.total - z.step) // servers_left) for z in latents]

    def tiles(self):
        """The overlapping latent tiles of the parallel protocols, one per ES (a meg_phy.tiles.TileLayout)."""
        from meg_phy.tiles import tile_layout

        return tile_layout(*self.ldm.latent_size, len(self.g.es), overlap=self.cfg.tile_overlap,
                           multiple=self.ldm.unet_multiple)

    def model_on(self, node: str):
        """The model as `node` runs it: this process's, or the ES's own on its Ray actor (same calls)."""
        return self.placement.model(node, self.ldm)

    @contextmanager
    def on(self, node: str, steps: Sequence[int] | int = 0, work: Sequence[int] | int = 0) -> Iterator[None]:
        """A stage of the batch on `node`: each task is accounted its own steps and work and an equal share
        of the wall time, plus the seconds memo hits stood in for (meg_phy.memo): a run reports what its
        work costs, not what the lookup did."""
        count = len(self)
        steps = list(steps) if isinstance(steps, Sequence) else [steps] * count
        work = list(work) if isinstance(work, Sequence) else [work] * count
        memo = getattr(self.ldm, "memo", None)
        saved = memo.saved_s if memo is not None else 0.0
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start + ((memo.saved_s - saved) if memo is not None else 0.0)
            for g, s, w in zip(self.graphs, steps, work, strict=True):
                g.account(node, seconds=seconds / count, steps=s, work=w)

    # --- where the input image is --------------------------------------------------------------------
    def ue_image(self) -> torch.Tensor | None:
        """The input images at the UE, for protocols that make their latent from them (UIEG, CIAG, UIDG, UIDCG)."""
        if self.cfg.image_at != "ue":
            raise InputError(f"{self.cfg.protocol} makes its seed from the input image at the UE, but image_at = "
                             f"'{self.cfg.image_at}'; set image_at = 'ue' (or, with the image at the ES, use EIUG, "
                             f"ESUC, DIUG, DSUC, DCSUC or CENTRALIZED)")
        return self.task.image

    def input_image(self, ue: str, es: str) -> torch.Tensor | None:
        """The input images at an ES: uploaded by the UE (config image_at = 'ue'), or already there ('es');
        None for text-to-image tasks (the ES generates from the prompt, nothing goes up)."""
        images = self.task.image
        if images is None or self.cfg.image_at == "es":
            return images
        return self.send_image(ue, es, images)[0]

    # --- generation stages (one model call for the batch) ----------------------------------------------
    def encode_prompt(self, node: str, prompts: Sequence[str | None] | str | None):
        """The prompt condition on `node`: one embedding per task (a lost prompt: the empty one)."""
        if prompts is None or isinstance(prompts, str):
            prompts = [prompts] * len(self)
        with self.on(node):
            return self.model_on(node).encode_prompt([p or "" for p in prompts], guidance=self.task.guidance)

    def start(self, node: str, images: torch.Tensor | None, steps: int | None = None,
              strength: float | Sequence[float] | None = None, noise_seeds: Sequence[int] | None = None) -> list:
        """VAE-encode the input images and noise them to the img2img strength (per task, or one for all): the
        latents at step 0 of a `steps` schedule (default: the task's), each task drawing from its own
        generator: its noise seed (`noise_seeds`, default the task's seed)."""
        strengths = list(strength) if isinstance(strength, Sequence) else [strength] * len(self)
        strengths = [self.task.strength if s is None else float(s) for s in strengths]
        steps = self.task.steps if steps is None else steps
        noise_seeds = [t.seed for t in self.task.tasks] if noise_seeds is None else list(noise_seeds)
        latents: list = [None] * len(self)
        with self.on(node):
            for value in dict.fromkeys(strengths):
                group = [i for i, s in enumerate(strengths) if s == value]
                gens = [torch.Generator().manual_seed(int(noise_seeds[i])) for i in group]
                part = None if images is None else images[group]
                out = self.model_on(node).start(None, part, strength=value, steps=steps, generator=gens)
                for i, z in zip(group, out, strict=True):
                    latents[i] = z
        return latents

    def denoise(self, node: str, latents: list, cond, to: int | Sequence[int] | None = None) -> list:
        """Denoise every task's latent from its step to step `to` (per task or one for all; None: the end)."""
        tos = list(to) if isinstance(to, Sequence) else [to] * len(latents)
        latents = [self.ldm.resolve_timesteps(z) for z in latents]
        targets = [z.total if t is None else t for z, t in zip(latents, tos, strict=True)]
        steps = [max(0, t - z.step) for z, t in zip(latents, targets, strict=True)]
        work = [n * z.latents[0].numel() for n, z in zip(steps, latents, strict=True)]
        with self.on(node, steps=steps, work=work):
            return self.model_on(node).denoise(latents, cond, until=targets)

    def decode(self, node: str, latents: list) -> torch.Tensor:
        with self.on(node):
            return self.model_on(node).decode(latents)

    def start_sketch(self, node: str, images: torch.Tensor | None) -> list:
        """The latents of a sketch: the same task with only `sketch_steps` denoising steps in all (img2img runs
        int(steps * strength) of a `steps` schedule, so the schedule is ceil(sketch_steps / strength))."""
        return self.start(node, images, steps=max(1, math.ceil(self.cfg.sketch_steps / self.task.strength)))

    def render_sketch(self, node: str, latents: list) -> torch.Tensor:
        """Decode sketch latents (a sketch is sent at 1/`sketch_scale` resolution, see send_image)."""
        return self.decode(node, latents)

    def sketch(self, node: str, images: torch.Tensor | None, cond) -> torch.Tensor:
        return self.render_sketch(node, self.denoise(node, self.start_sketch(node, images), cond))

    def resume(self, node: str, latents: list, noise_vars: Sequence[float]) -> list:
        """Resume from received latents: channel-aware (noise as extra diffusion noise) or naive (as is)."""
        return [self.resume_task(t, node, z, float(v))
                for t, (z, v) in enumerate(zip(latents, noise_vars, strict=True))]

    def merge(self, node: str, tiles_per_es: list[list], layout) -> list:
        """Blend each task's latent tiles (one list per ES) into one latent (raised-cosine over the overlaps)."""
        from meg_phy.ldm import merge_latents

        with self.on(node):
            return [merge_latents([tiles[t] for tiles in tiles_per_es], layout) for t in range(len(self))]

    def stitch(self, node: str, images: list[torch.Tensor], layout) -> torch.Tensor:
        """Blend image tiles (one batch per ES, each resized to its place, so sketch tiles work too) into full
        images."""
        from meg_phy.tiles import merge

        pixels = layout.scaled(self.ldm.vae_scale_factor)
        with self.on(node):
            placed = [resize(img, (h, w)) for img, (_, _, h, w) in zip(images, pixels.boxes, strict=True)]
            return merge(placed, pixels).clamp(0, 1)

    def complete(self, node: str, sketch: torch.Tensor, cond, noise_var: Sequence[float] | float = 0.0) -> torch.Tensor:
        """Text-guided img2img from (noisy) sketches, at a strength raised to cover each task's noise
        (meg_phy.resume.sketch_strength)."""
        from meg_phy.resume import sketch_strength

        variances = list(noise_var) if isinstance(noise_var, Sequence) else [noise_var] * len(self)
        with self.on(node):
            sketch = resize(sketch, tuple(int(v) for v in self.ldm.resolution))
            strengths = [self.cfg.sketch_strength] * len(self)
            if self.cfg.resume == "channel-aware":
                strengths = [sketch_strength(v, base=self.cfg.sketch_strength, ldm=self.ldm, image=sketch[i:i + 1])
                             for i, v in enumerate(variances)]
        return self.decode(node, self.denoise(node, self.start(node, sketch, strength=strengths), cond))

    # --- transfers: the tasks' payloads sent together, each on its own task's hops -----------------------
    def send_prompt(self, src: str, dst: str, texts: Sequence[str]) -> list[str | None]:
        """The prompts as UTF-8 bytes with a CRC (always digital); None where one never arrived intact."""
        return self.upload_prompt(src, [dst], texts)[0]

    def prompt_at(self, ue: str, servers: list[str]) -> list:
        """The tasks' prompts uploaded to every ES (one broadcast) and encoded there: one condition per ES."""
        return [self.encode_prompt(es, prompts)
                for es, prompts in zip(servers, self.upload_prompt(ue, servers, self.task.prompt), strict=True)]

    def upload_prompt(self, src: str, dsts: list[str], texts: Sequence[str]) -> list[list[str | None]]:
        """The prompts at every node of `dsts` (one broadcast, or one hop each with broadcast = false): per
        node, the batch's prompts as they arrived there."""
        return [arrived for arrived, _ in self._send(src, dsts, "prompt", "prompt", list(texts))]

    def send_control(self, src: str, dst: str, messages: Sequence[bytes]) -> list[bytes | None]:
        """Small digital messages (one per task), e.g. a noise seed and the schedule that reproduces a run, on
        the hop's robust control MCS (flowgraphs.hops.CONTROL_MCS) with HARQ, counted on air; None where one
        never arrived intact."""
        return self._send(src, [dst], "control", "control", list(messages))[0][0]

    def send_image(self, src: str, dst: str, images: torch.Tensor, payload: str = "image"
                   ) -> tuple[torch.Tensor, PerTask]:
        """Images (input, final image or `payload="sketch"`) as compressed bytes, analog pixels or SoftCast:
        (what arrived, noise variance per task, per pixel in [0, 1] units; flowgraphs.transfer)."""
        return self._images(self._send(src, [dst], payload, payload, [images[t:t + 1] for t in range(len(self))]))[0]

    def send_latent(self, src: str, dst: str, latents: list) -> tuple[list, PerTask]:
        """Latents (with their step) as analog values or quantised bytes: (what arrived, noise variance per
        task, in latent units: what channel-aware resume needs). The analog side information (shape,
        schedule) is session state, or goes digitally when `side_info = "link"` (flowgraphs.transfer)."""
        return self.upload_latent(src, [dst], latents)[0]

    def upload_latent(self, src: str, dsts: list[str], latents: list) -> list[tuple[list, PerTask]]:
        """Latents at every node of `dsts`, each with its own noise (one broadcast, or one hop each)."""
        return self._send(src, dsts, "seed", "latent", list(latents))

    def upload_image(self, ue: str, servers: list[str]) -> list[torch.Tensor | None]:
        """The input images at every ES: the UE's upload (a broadcast by default), or, with image_at = 'es',
        the copy that the first ES holds, sent to the others over backhaul hops; None everywhere for
        text-to-image tasks (each ES starts from the task's noise, the same draw on every ES)."""
        images = self.task.image
        if images is None:
            return [None] * len(servers)
        if self.cfg.image_at == "es":
            return [images] + [self.send_image(servers[0], es, images)[0] for es in servers[1:]]
        rows = [images[t:t + 1] for t in range(len(self))]
        return [got for got, _ in self._images(self._send(ue, servers, "image", "image", rows))]

    def _images(self, arrived: list[tuple[list, PerTask]]) -> list[tuple[torch.Tensor, PerTask]]:
        return [(torch.cat(images), noise) for images, noise in arrived]

    def _send(self, src: str, dsts: list[str], hop_payload: str, payload: str, values: list
              ) -> list[tuple[list, PerTask]]:
        """Every task's value to every node of `dsts`, over that task's own hops `SRC-DST-<hop_payload>` (one
        broadcast, or one hop each with broadcast = false), all tasks' transmissions sent together
        (flowgraphs.hops); encoded, decoded and stood in for when lost by the transfer table's row for the
        hops' carrier. Per node of `dsts`: (the batch's values as they arrived, their noise per task)."""
        groups = [list(dsts)] if self.cfg.broadcast else [[dst] for dst in dsts]
        channels = [(t, g.broadcast(src, group, hop_payload)) for t, g in enumerate(self.graphs) for group in groups]
        spec = channels[0][1].spec
        transfer = transfer_for(payload, spec.carrier, spec.image_codec)
        budget = None if spec.channel_uses is None else Budget(spec.channel_uses, channels[0][1].hops[0])
        carried = [transfer.encode(v, self.cfg, budget) for v in values]
        notes = [carried[t].report for t, _ in channels]
        if transfer.medium == "bytes":
            sent = broadcast_bytes([b for _, b in channels], [carried[t].data for t, _ in channels],
                                   transfer.decode_bytes, notes)
            arrived = [[None if r is None else (r, 0.0) for r in per] for per in sent]
        else:
            sent = broadcast_values([b for _, b in channels], [carried[t].data for t, _ in channels],
                                    [carried[t].side for t, _ in channels],
                                    transfer.side_check(self.cfg) if transfer.side_check else None, notes)
            arrived = [[transfer.decode_values(est, var, carried[t]) if record.delivered else None
                        for est, var, record in per] for (t, _), per in zip(channels, sent, strict=True)]
        at: list[list] = [[] for _ in self.graphs]      # per task, per node of dsts (in the groups' order)
        for (t, _), per in zip(channels, arrived, strict=True):
            at[t].extend(per)
        out = []
        for j, dst in enumerate(dsts):
            column = []
            for t, value in enumerate(values):
                got = at[t][j]
                if got is None:
                    with self.graphs[t].on(dst):
                        got = transfer.lost(value, LostContext(self.ldm, self.task.tasks[t].seed))
                column.append(got)
            out.append(([v for v, _ in column], PerTask(n for _, n in column)))
        return out

    def resume_task(self, t: int, node: str, latent, noise_var: float):
        """`resume` of task t's latent on `node` (one task's resume is its own computation), accounted on that
        task's ledger."""
        if noise_var <= 0 or self.cfg.resume == "naive":
            return latent
        from meg_phy.resume import resume

        with self.graphs[t].on(node):
            return resume(self.ldm, latent, noise_var, mode=self.cfg.resume)


def stack_images(images: list) -> torch.Tensor | None:
    """Per-task images (1, 3, H, W) as one batch; None when no task has one (text-to-image)."""
    if all(image is None for image in images):
        return None
    if any(image is None for image in images):
        raise InputError("a batch mixes text-to-image and img2img tasks; batch tasks of one kind")
    return torch.cat(images)
