"""Batched runs: one protocol on many tasks at once, each task with its own flowgraph, links and generators.

    outcomes = run_batch(configs, tasks, session)        # one Outcome per task, as run_protocol gives

A campaign point runs the same protocol with the same settings on many tasks that differ only in their
prompt, input image and seed. `run_batch` runs the protocol module once, unchanged, on `BatchStages`:
the same stage calls as `Stages`, where every value a protocol passes around carries the batch (prompts
and seeds as per-task lists, images and conditions as tensors with one row per task), so the protocol still
reads as its own description and the batch dimension lives here and in meg_phy.batch.

- Generation stages run once for the batch (meg_phy.batch): one text-encoder call, one VAE call, one UNet
  call per denoising step over the tasks that still have a step (each with its own schedule after
  channel-aware resume), each task drawing from its own generator (its seed, as `Stages.start` does).
- Transfers and resume run per task, on that task's own flowgraph (`Stages` of one task): its hops, hop
  seeds and link draws are the ones a one-task run uses. The links are cheap beside the model (measured in
  benchmarks/bench_campaign.py), so a hop of the batch is a loop over the tasks' hops.
- Accounting: each task's flowgraph gets its own hops, its own denoising steps and work, and an equal
  share of the batch's compute seconds on every node.

Results equal task-by-task runs up to the model kernels' float rounding (meg_phy.batch says why; the
benchmark says by how much), except where a quantiser turns that rounding into another payload: a digital
seed's int8 bytes may differ in a few values, and then so do its link draws (docs/distributed.md). Single-ES protocols and the zero-transmission baselines are covered; the
multi-ES protocols (joint tiles, chains) run task by task.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from flowgraphs.graph import Flowgraph
from flowgraphs.stages import Stages
from flowgraphs.task import Task
from meg_common.errors import InputError
from meg_phy import batch as ldm_batch

PER_TASK_FIELDS = ("seed", "prompt", "image")
"""RunConfig fields that may differ between the tasks of one batch; everything else is one setting."""


@dataclass
class TaskBatch:
    """The tasks of a batch as a protocol sees `st.task`: a prompt list, an image batch (or None), seeds."""

    tasks: list[Task]

    @property
    def prompt(self) -> list[str]:
        return [t.prompt for t in self.tasks]

    @property
    def image(self) -> torch.Tensor | None:
        """(B, 3, H, W), or None for text-to-image tasks."""
        return _stack([t.image for t in self.tasks])

    def __getattr__(self, name: str):
        """Settings every task shares (steps, strength, guidance, ldm)."""
        if name.startswith("_") or name == "tasks":
            raise AttributeError(name)
        values = [getattr(t, name) for t in self.tasks]
        if any(v is not values[0] and v != values[0] for v in values[1:]):
            raise AttributeError(f"tasks of the batch differ in {name!r}")
        return values[0]


class BatchGraph:
    """The per-task flowgraphs of a batch, as a protocol sees `st.g` (node names, `on`, `hop` per task)."""

    def __init__(self, graphs: list[Flowgraph]):
        self.graphs = graphs
        self.config = graphs[0].config
        self.nodes = graphs[0].nodes

    @property
    def es(self) -> list[str]:
        return self.nodes[1:]

    @contextmanager
    def on(self, node: str, steps: Sequence[int] | int = 0, work: Sequence[int] | int = 0) -> Iterator[None]:
        """A stage of the whole batch on `node`: each task gets its own steps and work and an equal share of
        the wall time."""
        count = len(self.graphs)
        steps = list(steps) if isinstance(steps, Sequence) else [steps] * count
        work = list(work) if isinstance(work, Sequence) else [work] * count
        start = time.perf_counter()
        try:
            yield
        finally:
            share = (time.perf_counter() - start) / count
            for g, s, w in zip(self.graphs, steps, work, strict=True):
                g.account(node, seconds=share, steps=s, work=w)


class BatchStages:
    """`Stages` for a batch of tasks (see the module docstring): the same methods, batched values."""

    def __init__(self, graphs: list[Flowgraph], tasks: list[Task], placement=None):
        from flowgraphs.placement import LOCAL

        if not graphs or len(graphs) != len(tasks):
            raise InputError(f"{len(graphs)} flowgraphs for {len(tasks)} tasks; give one of each per task")
        if placement is not None and placement is not LOCAL and getattr(placement, "name", "local") != "local":
            raise InputError("batched runs compute in this process; use placement 'local' (or run task by task)")
        self.singles = [Stages(g, t) for g, t in zip(graphs, tasks, strict=True)]
        self.g = BatchGraph(graphs)
        self.task = TaskBatch(list(tasks))
        self.cfg = graphs[0].config
        self.ldm = self.task.ldm
        for name in ("steps", "strength", "guidance"):
            getattr(self.task, name)                 # one value for the batch, or AttributeError naming it
        self.n_steps = self.singles[0].n_steps

    def __len__(self) -> int:
        return len(self.singles)

    # --- where the work is split ---------------------------------------------------------------------------
    def split_step(self) -> int:
        return self.singles[0].split_step()

    # --- where the input image is --------------------------------------------------------------------------
    def ue_image(self) -> torch.Tensor | None:
        return _stack([s.ue_image() for s in self.singles])

    def input_image(self, ue: str, es: str) -> torch.Tensor | None:
        return _stack([s.input_image(ue, es) for s in self.singles])

    # --- generation stages (one model call for the batch) -----------------------------------------------
    def encode_prompt(self, node: str, prompts: Sequence[str | None] | str | None) -> object:
        if prompts is None or isinstance(prompts, str):
            prompts = [prompts] * len(self)
        with self.g.on(node):
            return ldm_batch.encode_prompts(self.ldm, [p or "" for p in prompts], self.task.guidance)

    def start(self, node: str, images: torch.Tensor | None, steps: int | None = None,
              strength: float | Sequence[float] | None = None) -> list:
        """Per-task seeds at step 0 from one VAE encoding per strength (tasks drawing from their own generators)."""
        strengths = list(strength) if isinstance(strength, Sequence) else [strength] * len(self)
        strengths = [self.task.strength if s is None else float(s) for s in strengths]
        steps = self.task.steps if steps is None else steps
        seeds: list = [None] * len(self)
        with self.g.on(node):
            for value in dict.fromkeys(strengths):
                group = [i for i, s in enumerate(strengths) if s == value]
                gens = [torch.Generator().manual_seed(self.singles[i].task.seed) for i in group]
                part = None if images is None else images[group]
                for i, seed in zip(group, ldm_batch.start(self.ldm, part, gens, value, steps), strict=True):
                    seeds[i] = seed
        return seeds

    def denoise(self, node: str, seeds: list, cond, to: int | None = None) -> list:
        targets = [s.total if to is None else to for s in (self.ldm.resolve_timesteps(s) for s in seeds)]
        steps = [max(0, t - s.step) for s, t in zip(seeds, targets, strict=True)]
        area = [n * s.latents[0].numel() for n, s in zip(steps, seeds, strict=True)]
        with self.g.on(node, steps=steps, work=area):
            return ldm_batch.denoise(self.ldm, seeds, cond, until=targets)

    def decode(self, node: str, seeds: list) -> torch.Tensor:
        with self.g.on(node):
            return ldm_batch.decode(self.ldm, seeds)

    def start_sketch(self, node: str, image: torch.Tensor | None) -> list:
        """As Stages.start_sketch: a schedule of ceil(sketch_steps / strength) steps."""
        return self.start(node, image, steps=max(1, math.ceil(self.cfg.sketch_steps / self.task.strength)))

    def render_sketch(self, node: str, seeds: list) -> torch.Tensor:
        return self.decode(node, seeds)

    def sketch(self, node: str, image: torch.Tensor | None, cond) -> torch.Tensor:
        return self.render_sketch(node, self.denoise(node, self.start_sketch(node, image), cond))

    def complete(self, node: str, sketch: torch.Tensor, cond, noise_var: Sequence[float] | float = 0.0) -> torch.Tensor:
        """Sketch completion per task strength (channel-aware: from each task's own noise), batched model calls."""
        from meg_phy.images import resize
        from meg_phy.resume import sketch_strength

        variances = list(noise_var) if isinstance(noise_var, Sequence) else [noise_var] * len(self)
        with self.g.on(node):
            sketch = resize(sketch, tuple(self.task.image.shape[-2:]))
            strengths = [self.cfg.sketch_strength] * len(self)
            if self.cfg.resume == "channel-aware":
                strengths = [sketch_strength(v, base=self.cfg.sketch_strength, ldm=self.ldm, image=sketch[i:i + 1])
                             for i, v in enumerate(variances)]
        seeds = self.start(node, sketch, strength=strengths)
        return self.decode(node, self.denoise(node, seeds, cond))

    # --- per task: resume and transfers on each task's own flowgraph ----------------------------------------
    def resume(self, node: str, seeds: list, noise_vars: Sequence[float]) -> list:
        return [s.resume(node, seed, v) for s, seed, v in zip(self.singles, seeds, noise_vars, strict=True)]

    def send_prompt(self, src: str, dst: str, texts: Sequence[str]) -> list[str | None]:
        return [s.send_prompt(src, dst, t) for s, t in zip(self.singles, texts, strict=True)]

    def send_image(self, src: str, dst: str, images: torch.Tensor, payload: str = "image"
                   ) -> tuple[torch.Tensor, list[float]]:
        out = [s.send_image(src, dst, images[i:i + 1], payload) for i, s in enumerate(self.singles)]
        return torch.cat([img for img, _ in out]), [v for _, v in out]

    def send_seed(self, src: str, dst: str, seeds: list) -> tuple[list, list[float]]:
        out = [s.send_seed(src, dst, seed) for s, seed in zip(self.singles, seeds, strict=True)]
        return [seed for seed, _ in out], [v for _, v in out]



def _stack(images: list) -> torch.Tensor | None:
    """Per-task images (1, 3, H, W) as one batch; None when no task has one (text-to-image)."""
    if all(image is None for image in images):
        return None
    if any(image is None for image in images):
        raise InputError("a batch mixes text-to-image and img2img tasks; batch tasks of one kind")
    return torch.cat(images)


def check_batch(configs: Sequence) -> None:
    """InputError unless the configs differ only in PER_TASK_FIELDS (one protocol, one link setup)."""
    if not configs:
        raise InputError("an empty batch; give at least one task")
    first = {k: v for k, v in configs[0].to_dict().items() if k not in PER_TASK_FIELDS}
    for config in configs[1:]:
        data = {k: v for k, v in config.to_dict().items() if k not in PER_TASK_FIELDS}
        if data != first:
            differ = sorted(k for k in set(data) | set(first) if data.get(k) != first.get(k))
            raise InputError(f"the tasks of a batch must share every setting but {', '.join(PER_TASK_FIELDS)}; "
                             f"these differ: {', '.join(differ)}")


def run_batch(configs: Sequence, tasks: Sequence[Task], session=None,
              flow: Callable | None = None) -> list:
    """Run one protocol (`flow`: default the configs' protocol module's `run`) on every task as one batch;
    one `flowgraphs.runner.Outcome` per task, with that task's own flowgraph."""
    from flowgraphs import protocols
    from flowgraphs.runner import Outcome
    from flowgraphs.session import Session

    session = session or Session()
    configs = [c.resolved() for c in configs]
    check_batch(configs)
    if flow is None:
        if configs[0].protocol not in protocols.SINGLE_ES:
            raise InputError(f"{configs[0].protocol} is a multi-ES protocol; batched runs cover "
                             f"{', '.join(protocols.SINGLE_ES)} (run it task by task)")
        flow = protocols.get(configs[0].protocol)
    graphs = [Flowgraph(c, session.link_factory(c)) for c in configs]
    images = flow(BatchStages(graphs, list(tasks), session.placement))
    return [Outcome(c, images[i:i + 1].detach().clamp(0, 1), g)
            for i, (c, g) in enumerate(zip(configs, graphs, strict=True))]
