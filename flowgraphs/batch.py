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
- Transfers and resume run per task, on that task's own flowgraph (`Stages` of one task): its codecs, hops,
  hop seeds, retries and records are the ones a one-task run has. The link calls of a transfer are
  gathered over the tasks (`GatheredLinks`): each task's transfer runs until it reaches a link call whose
  result is not there yet, which stops it (`_Pending`: nothing is recorded before a hop completes); the
  calls the tasks stopped at go to each link as one batched call (`send_bytes_many` / `send_values_many`,
  every payload drawing from the generator its own hop would use, so the results are bit for bit the
  one-task ones, tests/test_link_batched.py); then the transfers run again, taking those results, until
  every task's transfer is through (twice for a hop with one link call). Links without batched calls
  (radio, wired, capacity) are called as they are, once each, their results replayed.
- Accounting: each task's flowgraph gets its own hops, its own denoising steps and work, and an equal
  share of the batch's compute seconds on every node (a memo hit counts the seconds it stands in for).

Results equal task-by-task runs up to the model kernels' float rounding (meg_phy.batch says why; the
benchmark says by how much), except where a quantiser turns that rounding into another payload: a digital
seed's int8 bytes may differ in a few values, and then so do its link draws (docs/distributed.md). Single-ES protocols and the zero-transmission baselines are covered; the
cooperative chains (UIDCG, DCSUC: whole-latent step ranges) and the parallel ones (UIDG, DIUG, DSUC: joint
tiles with whole-latent context windows, `BatchJoint`: every round, ES i's tile step of every task that still
has one is one UNet call; each task's exchanges run on its own flowgraph, when that task's would) are too.
Values that are one number per task (noise variances) travel as `PerTask` lists, so a protocol's
`sum(noise) / len(noise)` over ESs works task by task.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from flowgraphs.graph import Flowgraph
from flowgraphs.stages import Stages
from flowgraphs.task import Task
from meg_common.errors import InputError
from meg_phy import batch as ldm_batch
from meg_phy.memo import replayed_seconds


class PerTask(list):
    """One number per task (a noise variance), as a protocol passes it around: `sum(values) / n` over ESs works
    task by task, as it does on one task's floats."""

    def __add__(self, other):
        return PerTask(a + b for a, b in zip(self, other, strict=True)) if isinstance(other, list) else \
            PerTask(a + other for a in self)

    def __radd__(self, other):
        return self.__add__(other)

    def __truediv__(self, other):
        return PerTask(a / other for a in self)


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
        start, replayed = time.perf_counter(), replayed_seconds()
        try:
            yield
        finally:  # a memo hit stands in for its computation's seconds (meg_phy.memo): a run reports what it costs
            share = (time.perf_counter() - start + replayed_seconds() - replayed) / count
            for g, s, w in zip(self.graphs, steps, work, strict=True):
                g.account(node, seconds=share, steps=s, work=w)


class BatchStages:
    """`Stages` for a batch of tasks (see the module docstring): the same methods, batched values."""

    def __init__(self, graphs: list[Flowgraph], tasks: list[Task], placement=None,
                 links: list[GatheredLinks] | None = None):
        """`links`: the GatheredLinks each task's flowgraph gets its links from (run_batch builds them); None:
        every transfer runs task by task, one link call at a time."""
        from flowgraphs.placement import LOCAL

        if not graphs or len(graphs) != len(tasks):
            raise InputError(f"{len(graphs)} flowgraphs for {len(tasks)} tasks; give one of each per task")
        if placement is not None and placement is not LOCAL and getattr(placement, "name", "local") != "local":
            raise InputError("batched runs compute in this process; use placement 'local' (or run task by task)")
        self.singles = [Stages(g, t) for g, t in zip(graphs, tasks, strict=True)]
        if links is not None and len(links) != len(graphs):
            raise InputError(f"{len(links)} link factories for {len(graphs)} flowgraphs; give one per task")
        self.links = links
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
        return _stack(self._transfer(lambda i, s: s.input_image(ue, es)))

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

    def share(self, seeds: list, servers_left: int) -> list[int]:
        """Stages.share per task: where this ES of a chain stops (each task's own remaining schedule)."""
        return [s.share(seed, servers_left) for s, seed in zip(self.singles, seeds, strict=True)]

    def denoise(self, node: str, seeds: list, cond, to: int | Sequence[int] | None = None) -> list:
        tos = list(to) if isinstance(to, Sequence) else [to] * len(seeds)
        targets = [s.total if t is None else t
                   for s, t in zip((self.ldm.resolve_timesteps(s) for s in seeds), tos, strict=True)]
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
            sketch = resize(sketch, tuple(int(v) for v in self.ldm.resolution))
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
        return self._transfer(lambda i, s: s.send_prompt(src, dst, texts[i]))

    def upload_prompt(self, src: str, dsts: list[str], texts: Sequence[str]) -> list[list[str | None]]:
        """Stages.upload_prompt per task; per node of `dsts`, the prompts of the batch as they arrived there."""
        per_task = self._transfer(lambda i, s: s.upload_prompt(src, dsts, texts[i]))
        return [[arrived[j] for arrived in per_task] for j in range(len(dsts))]

    def send_image(self, src: str, dst: str, images: torch.Tensor, payload: str = "image"
                   ) -> tuple[torch.Tensor, list[float]]:
        out = self._transfer(lambda i, s: s.send_image(src, dst, images[i:i + 1], payload))
        return torch.cat([img for img, _ in out]), PerTask(v for _, v in out)

    def send_seed(self, src: str, dst: str, seeds: list) -> tuple[list, list[float]]:
        out = self._transfer(lambda i, s: s.send_seed(src, dst, seeds[i]))
        return [seed for seed, _ in out], PerTask(v for _, v in out)

    # --- the parallel protocols: joint tiled denoising, the UNet steps of every ES batched over the tasks ----
    def upload_seed(self, src: str, dsts: list[str], seeds: list) -> list[tuple[list, PerTask]]:
        """Stages.upload_seed per task; per node of `dsts`: (the batch's seeds as they arrived, their noise)."""
        per_task = self._transfer(lambda i, s: s.upload_seed(src, dsts, seeds[i]))
        return [([got[j][0] for got in per_task], PerTask(got[j][1] for got in per_task)) for j in range(len(dsts))]

    def prompt_at(self, ue: str, servers: list[str]) -> list:
        return [self.encode_prompt(es, prompts)
                for es, prompts in zip(servers, self.upload_prompt(ue, servers, self.task.prompt), strict=True)]

    def upload_image(self, ue: str, servers: list[str]) -> list[torch.Tensor | None]:
        per_task = self._transfer(lambda i, s: s.upload_image(ue, servers))
        return [_stack([got[j] for got in per_task]) for j in range(len(servers))]

    def share_tiles(self, copies: list, noise_vars: list | None = None) -> BatchJoint:
        """Stages.share_tiles per task (its first exchange and resume on its own flowgraph)."""
        if self.cfg.tile_context is not None:
            raise InputError("batched joint denoising runs whole-latent context windows; leave tile_context unset "
                             "or run task by task")
        return BatchJoint(self._transfer(lambda i, s: s.share_tiles(
            [c[i] for c in copies], None if noise_vars is None else [float(v[i]) for v in noise_vars])))

    def denoise_jointly(self, joint: BatchJoint, conds: list, to: int | None = None,
                        last_exchange: bool = False) -> BatchJoint:
        """Stages.denoise_jointly for every task: each step, ES i advances its tile of every task that still has
        a step in one batched UNet call (tasks resumed at other noise levels have other schedules); the
        exchanges run per task on its own flowgraph, when that task's would."""
        from flowgraphs.joint import exchange, keep_tile

        joints = joint.joints
        every = self.cfg.exchange_every
        targets = [j.copies[0].total if to is None else to for j in joints]
        while True:
            active = [t for t, j in enumerate(joints) if j.copies[0].step < targets[t]]
            if not active:
                break
            # the steps up to each task's next exchange, in one-step rounds: one batched call per ES per round
            for i, es in enumerate(joints[0].es):
                seeds = [joints[t].copies[i] for t in active]
                work = [0] * len(self)
                for t in active:
                    work[t] = seeds[0].latents.shape[-3] * joints[t].layout.height * joints[t].layout.width
                with self.g.on(es, steps=[1 if t in active else 0 for t in range(len(self))], work=work):
                    outs = ldm_batch.denoise(self.ldm, seeds, _rows(conds[i], active, len(self)),
                                             until=[s.step + 1 for s in seeds])
                for t, seed, out in zip(active, seeds, outs, strict=True):
                    joints[t].copies[i] = keep_tile(seed, out, joints[t].windows[i], joints[t].layout.boxes[i],
                                                    whole=True)
            for t in active:
                joints[t].since += 1
            due = [t for t in active if joints[t].since >= every
                   and (joints[t].copies[0].step < targets[t] or last_exchange)]
            if due:
                self._transfer(lambda k, s, due=due: exchange(s, joints[k]) if k in due else None)
        if last_exchange:
            late = [t for t, j in enumerate(joints) if j.since]
            if late:
                self._transfer(lambda k, s: exchange(s, joints[k]) if k in late else None)
        return joint

    def decode_tile(self, node: str, joint: BatchJoint, i: int) -> torch.Tensor:
        """ES i's tile of every task in pixels: one VAE call on the whole latents, each task's tile cut out."""
        f = self.ldm.vae_scale_factor
        top, left, h, w = joint.joints[0].layout.boxes[i]
        with self.g.on(node):
            pixels = ldm_batch.decode(self.ldm, [j.view(i) for j in joint.joints])
        return pixels[..., top * f:(top + h) * f, left * f:(left + w) * f]

    def stitch(self, node: str, images: list[torch.Tensor], tiles) -> torch.Tensor:
        return torch.cat([s.stitch(node, [image[t:t + 1] for image in images], tiles)
                          for t, s in enumerate(self.singles)])

    def merge(self, node: str, seeds: list, tiles) -> list:
        """Stages.merge per task: `seeds` per ES, each the batch's tiles."""
        return [s.merge(node, [tile[t] for tile in seeds], tiles) for t, s in enumerate(self.singles)]

    def _transfer(self, send: Callable[[int, Stages], Any]) -> list:
        """`send(i, stages of task i)` for every task, their link calls gathered into batched calls (module
        docstring); without GatheredLinks one task after the other."""
        if self.links is None:
            return [send(i, s) for i, s in enumerate(self.singles)]
        results: list = [None] * len(self)
        todo = list(range(len(self)))
        for links in self.links:
            links.begin()
        try:
            while todo:
                pending, stopped = [], []
                for i in todo:
                    self.links[i].new_pass()
                    try:
                        results[i] = send(i, self.singles[i])
                    except _Pending as stop:
                        pending.append(stop.call)
                        stopped.append(i)
                _make_calls(pending)
                todo = stopped
        finally:
            for links in self.links:
                links.end()
        return results


class _Pending(BaseException):  # noqa: N818 (not an error: a transfer waiting for its batch)
    """A task's transfer reached a link call the batch has not made yet; it unwinds the transfer (nothing is
    recorded before a hop completes) until BatchStages._transfer has made the call. A BaseException, so that
    no `except Exception` on the way takes it for a failure."""

    def __init__(self, call: _Call):
        super().__init__()
        self.call = call


@dataclass
class _Call:
    """One link call of a task's transfer: what goes in, the generator it draws from, what came out."""

    link: Any
    kind: str                     # "bytes" or "values"
    payload: Any
    generator: torch.Generator | None = None
    result: Any = None
    done: bool = False
    state_after: torch.Tensor | None = None


@dataclass
class _Handed:
    """A link as one hop of a transfer got it (in the order the transfer asks): its calls so far."""

    key: tuple
    state: torch.Tensor | None     # its generator's state when handed out (the hop's seed)
    calls: list[_Call] = field(default_factory=list)


class GatheredLinks:
    """The link factory of one task of a batch: the task's own factory, and during a gathered transfer
    (BatchStages._transfer) links that record their calls instead of making them (see the module docstring).

    The k-th link a transfer asks for is the same hop on every pass (a transfer is deterministic), so the
    calls are kept by that order and replayed; a call that repeats differently is a RuntimeError."""

    def __init__(self, factory):
        self.factory = factory
        self._handed: list[_Handed] | None = None
        self._count = 0

    def __call__(self, spec, seed: int):
        link = self.factory(spec, seed)
        if self._handed is None:
            return link
        key = (spec, int(seed))
        if self._count == len(self._handed):
            generator = getattr(link, "generator", None)
            self._handed.append(_Handed(key, None if generator is None else generator.get_state()))
        handed = self._handed[self._count]
        self._count += 1
        if handed.key != key:
            raise RuntimeError("a batched transfer asked for other hops on its second pass; it must be deterministic")
        return _GatheredLink(link, handed)

    def begin(self) -> None:
        self._handed, self._count = [], 0

    def new_pass(self) -> None:
        self._count = 0

    def end(self) -> None:
        self._handed = None


class _GatheredLink:
    """A link inside a gathered transfer: replays the calls made so far; a new call on a link with batched
    sends stops the transfer (_Pending), any other link is called at once (its result kept for the replays).
    A hop makes all its calls on one link without stopping in between (Hop.send_bytes: send, decode, send
    again), so a link without batched sends never has a call left for a later pass."""

    def __init__(self, link, handed: _Handed):
        self._link, self._handed, self._next = link, handed, 0

    def __getattr__(self, name: str):
        return getattr(self._link, name)

    def send_bytes(self, payload: bytes):
        return self._call("bytes", bytes(payload))

    def send_values(self, values: torch.Tensor):
        return self._call("values", values)

    def _call(self, kind: str, payload):
        index, calls = self._next, self._handed.calls
        self._next += 1
        if index < len(calls):
            call = calls[index]
            same = torch.equal(call.payload, payload) if kind == "values" else call.payload == payload
            if call.kind != kind or not same:
                raise RuntimeError("a batched transfer sent another payload on its second pass; it must be "
                                   "deterministic")
            if not call.done:
                raise _Pending(call)
            return call.result
        call = _Call(self._link, kind, payload)
        calls.append(call)
        if not hasattr(self._link, f"send_{kind}_many"):
            call.result, call.done = getattr(self._link, f"send_{kind}")(payload), True
            return call.result
        state = calls[index - 1].state_after if index else self._handed.state   # where this link's draws go on
        call.generator = torch.Generator(device=self._link.generator.device)
        call.generator.set_state(state)
        raise _Pending(call)


def _make_calls(calls: list[_Call]) -> None:
    """The pending calls of a pass, one batched call per link and kind; each generator advances as the link's
    own would have in a one-task run."""
    groups: dict[tuple[int, str], list[_Call]] = {}
    for call in calls:
        groups.setdefault((id(call.link), call.kind), []).append(call)
    for (_, kind), group in groups.items():
        send = getattr(group[0].link, f"send_{kind}_many")
        results = send([c.payload for c in group], [c.generator for c in group])
        for call, result in zip(group, results, strict=True):
            call.result, call.done, call.state_after = result, True, call.generator.get_state()


@dataclass
class BatchJoint:
    """The joint tiled denoising of a batch: one flowgraphs.joint.Joint per task (same ESs, layout and
    windows), as a protocol sees `joint`."""

    joints: list

    @property
    def layout(self):
        return self.joints[0].layout

    def tile(self, i: int) -> list:
        """ES i's tile of every task (what it sends to the UE)."""
        return [j.tile(i) for j in self.joints]


def _rows(cond, rows: list[int], count: int):
    """The prompt condition of the batch's tasks `rows` (all of them: `cond` itself)."""
    if len(rows) == count or cond.embeds.shape[0] == 1:
        return cond
    prompts = cond.prompt if isinstance(cond.prompt, list) else [cond.prompt] * count
    return replace(cond, embeds=cond.embeds[rows], prompt=[prompts[r] for r in rows])


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
        if configs[0].protocol not in protocols.BATCHED:
            raise InputError(f"{configs[0].protocol} cannot run batched; batched runs cover "
                             f"{', '.join(protocols.BATCHED)} (run it task by task)")
        flow = protocols.get(configs[0].protocol)
    links = [GatheredLinks(session.link_factory(c)) for c in configs]
    graphs = [Flowgraph(c, f) for c, f in zip(configs, links, strict=True)]
    images = flow(BatchStages(graphs, list(tasks), session.placement, links=links))
    return [Outcome(c, images[i:i + 1].detach().clamp(0, 1), g)
            for i, (c, g) in enumerate(zip(configs, graphs, strict=True))]
