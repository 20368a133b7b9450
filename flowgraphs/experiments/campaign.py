"""One campaign runtime: what every experiment over many tasks shares (the case study, the bandwidth sweep).

An experiment defines its plan (a frozen dataclass with `n_tasks`, `chunk`, the task settings `steps`,
`strength`, `guidance`, `model`, `evaluator`, and `to_dict`), its design points (frozen dataclasses with a
`key`), a `run_unit(worker, point_data, indices)` that returns `{"point": ..., "records": [...]}` or
`{"point": ..., "skipped": why}`, and a `row(point, records, baseline)` that pools one point. This module
does the rest once:

- units: a point's tasks cut into chunks of `plan.chunk`; each chunk is one independent unit for
  `meg_common.executors` (key `<point key>|chunk<part>`), so a campaign runs in this process or on Ray with
  identical results and resumes from the units already stored (`run_units`, `Timing`);
- the resume guard (`plan_matches`): a folder made with another plan is refused;
- the worker (`Harness`): session, world, tasks, one reference per task, the zero-transmission baselines,
  one PyTorch thread per unit; `score` turns (image, numbers) outcomes into per-task records;
- pooling: `collect` joins the chunks of each point, `rows` pools every point beside its prompt-only
  baseline, `quality` and `paired` are the pooled figures with 95 % intervals (meg_common.stats).
"""

from __future__ import annotations

import json
import resource
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from meg_common import stats

NO_CHANNEL = "none"
"""The channel of a zero-transmission point (a baseline)."""
BASELINE_KEYS = ("prompt-only", "ue-local")
SEED_PROTOCOL = "EIUG"
"""The protocol whose configuration the baselines and the sweep's seed stages are built from."""
UPLINK_SNR_DB = 20.0
UNIT_THREADS = 1
"""PyTorch threads per campaign unit (a unit is one task on the small embedded model: one thread is
the efficient choice on a CPU; scale out with more units, e.g. `--executor ray --workers N`)."""
MEMO_ENTRIES = 8192
"""Denoising results a worker keeps (a 4x8x8 seed is about 1.5 kB with its schedule): enough for a few
design points of 200 tasks between two that share the ES's work."""


# ---- points and units ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """What every design point has (an experiment's points add their own fields and a `key`)."""

    kind: str
    series: str
    channel: str
    snr_db: float | None

    @property
    def snr_key(self) -> str:
        return "none" if self.snr_db is None else f"{self.snr_db:+.1f}dB"


def chunks(n_tasks: int, chunk: int) -> list[list[int]]:
    return [list(range(i, min(i + chunk, n_tasks))) for i in range(0, n_tasks, chunk)]


def unit_key(point, part: int) -> str:
    return f"{point.key}|chunk{part}"


def units(points, plan, run_unit) -> list[Any]:
    """The units of a campaign (meg_common.executors.Unit): every point x every chunk of the plan's tasks,
    chunk by chunk (every point's first chunk before any second one), so an interrupted long run already
    covers every point (`--report-only`), and the ES's denoising of a chunk's tasks stays in the memo."""
    from meg_common.executors import Unit

    return [Unit(unit_key(p, part), run_unit, (asdict(p), idx))
            for part, idx in enumerate(chunks(plan.n_tasks, plan.chunk)) for p in points]


def setup(worker, plan_type, plan_data: dict[str, Any]):
    """Per-worker state (meg_common.executors `setup`): one `worker` of the plan, built once per process."""
    return worker(plan_type.from_dict(plan_data))


def make_setup(worker, plan):
    """The picklable `setup` of a campaign (a Ray worker builds its own)."""
    return partial(setup, worker, type(plan), plan.to_dict())


def plan_matches(out: Path, plan, what: str = "campaign") -> None:
    """Refuse to resume a folder made with another plan (its checkpoints would mix two configurations)."""
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_json

    path = Path(out) / "plan.json"
    if path.exists():
        if json.loads(path.read_text()) != plan.to_dict():
            raise InputError(f"{out} holds a {what} with another configuration ({path}); use a new --out, "
                             f"or delete it to start over")
    else:
        atomic_write_json(path, plan.to_dict())


class Timing:
    """Wall and CPU seconds of a campaign, summed over every time it was run (it resumes), kept in `path`."""

    def __init__(self, path: Path):
        from meg_common.io import read_json

        self.path = Path(path)
        self.spent = read_json(self.path) if self.path.exists() else {}
        self.start, self.cpu0 = time.perf_counter(), _cpu()

    def save(self, *_) -> None:
        from meg_common.io import atomic_write_json

        atomic_write_json(self.path, {"seconds": self.spent.get("seconds", 0.0) + time.perf_counter() - self.start,
                                      "cpu_seconds": self.spent.get("cpu_seconds", 0.0) + _cpu() - self.cpu0})

    def read(self) -> dict[str, float]:
        from meg_common.io import read_json

        return {"seconds": 0.0, "cpu_seconds": 0.0, **(read_json(self.path) if self.path.exists() else self.spent)}


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_units(executor, units_: list, out: Path, setup, timing: Timing, desc: str, store: str = "units",
              report_only: bool = False, context=None) -> tuple[dict[str, Any], dict[str, int]]:
    """Run (or, `report_only`, only load) a campaign's units with checkpoints in out/`store`: (results by unit
    key, progress {"done", "of"}). `context`: entered around the run (e.g. a placement's actors)."""
    from meg_common.errors import InputError
    from meg_common.executors import JsonUnitStore

    store_ = JsonUnitStore(Path(out) / store)
    if report_only:
        stored = store_.load()
        results = {u.key: stored[u.key] for u in units_ if u.key in stored}
        if not results:
            raise InputError(f"--report-only: {out} holds no finished unit yet; run the campaign first")
    else:
        with context or nullcontext():
            results = executor.run(units_, store_, setup=setup, on_result=timing.save, desc=desc)
        timing.save()
    return results, {"done": len(results), "of": len(units_)}


# ---- pooling -------------------------------------------------------------------------------------------
def collect(results: dict[str, Any], point_type, skipped_as=None
            ) -> tuple[dict[Any, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Unit results -> the records of each point (chunks joined, in task order) and the skipped points
    (`skipped_as(point, point_data, why)` describes one; default: its key and why)."""
    merged: dict[Any, list[dict[str, Any]]] = {}
    skipped: dict[Any, dict[str, Any]] = {}
    for result in results.values():
        point = point_type(**result["point"])
        if "skipped" in result:
            skipped[point] = (skipped_as or _skipped)(point, result["point"], result["skipped"])
            continue
        merged.setdefault(point, []).extend(result["records"])
    for records in merged.values():
        records.sort(key=lambda r: r["task"])
    return {p: r for p, r in merged.items() if p not in skipped}, list(skipped.values())


def _skipped(point, point_data: dict[str, Any], why: str) -> dict[str, Any]:
    return {"point": point.key, "why": why}


def rows(merged: dict[Any, list[dict[str, Any]]], row, baseline_of) -> list[dict[str, Any]]:
    """Every point pooled by `row(point, records, baseline records or None)`, its baseline the point
    `baseline_of(point)` (prompt-only of the same task kind)."""
    return [row(point, records, merged.get(baseline_of(point))) for point, records in merged.items()]


def quality(records: list[dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Prompt accuracy (a rate), PSNR of the mean MSE, and the mean of each metric (None where no record has
    it), each with its 95 % interval."""
    matches = [bool(r["prompt_match"]) for r in records]
    out: dict[str, Any] = {"prompt_accuracy": stats.rate(sum(matches), len(matches)),
                           "psnr_db": stats.pooled_psnr([r["mse"] for r in records])}
    for key in metrics:
        values = [r[key] for r in records if r.get(key) is not None]
        out[key] = stats.mean(values) if values else None
    return out


def paired(records: list[dict[str, Any]], baseline: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Paired differences (mean and 95 % interval) against the baseline's records of the same tasks; a
    boolean key (prompt_match as `prompt_accuracy`) counts as 0/1."""
    base = {r["task"]: r for r in baseline}
    mine = [r for r in records if r["task"] in base]

    def values(rs, key):
        return [float(bool(r["prompt_match"])) for r in rs] if key == "prompt_accuracy" else [r[key] for r in rs]

    return {key: stats.paired_difference(values(mine, key), values([base[r["task"]] for r in mine], key))
            for key in keys}


# ---- one worker's state --------------------------------------------------------------------------------
class Harness:
    """What a worker keeps between units: the session (model, evaluator, links), the world, the tasks, the
    references and the baselines' outputs (both depend only on the task). `plan` needs `n_tasks`, `steps`,
    `strength`, `guidance`, `model` and `evaluator`."""

    def __init__(self, plan):
        from flowgraphs.experiments.world import load_world
        from flowgraphs.session import Session
        from meg_phy.memo import DenoiseMemo

        self.plan = plan
        self.session = Session(evaluator=plan.evaluator, runtime=getattr(plan, "runtime", "torch"))
        self.world = load_world(plan.evaluator, self.session)
        self.ldm = self.session.model(plan.model)
        self.ldm.memo = DenoiseMemo(MEMO_ENTRIES)
        """The ES's denoising repeats across design points (EIUG's seed at every downlink SNR, CENTRALIZED's
        image for each of its series): computed once per worker, bit for bit the same (meg_phy.memo)."""
        self.prompts = self.world.prompts(plan.n_tasks)
        self._references: dict[tuple[str, int], tuple[torch.Tensor, bool | None]] = {}
        self._baselines: dict[tuple[str, str, int], tuple[torch.Tensor, dict[str, Any]]] = {}
        self.threads = UNIT_THREADS
        """PyTorch's threads in every unit, whatever the executor: float reductions split differently over
        different thread counts (PSNRs moved in the 8th digit between a 2-thread local run and 1-CPU Ray
        workers), so one count makes local and Ray results identical. Restored after every run, because
        starting numba's OpenMP threads (the fast LDPC decoder's parallel region) resets the OpenMP runtime
        that PyTorch shares (measured: 1 -> 2 threads, about 10x the CPU time per denoising step on busy
        cores, and float results that depend on which run came first in a process). So numba's threads
        start here, once."""
        _start_numba_threads(self.threads)
        torch.set_num_threads(self.threads)

    def restore_threads(self) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def task(self, kind: str, i: int):
        from flowgraphs.task import Task
        from meg_phy.images import resize

        prompt, seed = self.prompts[i], 1000 + i
        guidance = self.ldm.default_guidance if self.plan.guidance is None else self.plan.guidance
        if kind == "text-to-image":
            return Task(prompt=prompt, image=None, image_source="none (text-to-image)", ldm=self.ldm, seed=seed,
                        steps=self.plan.steps, strength=1.0, guidance=guidance)
        image = resize(self.world.input_image(prompt, seed)[None], tuple(int(v) for v in self.ldm.resolution))
        return Task(prompt=prompt, image=image, image_source=f"{self.world.name} scene (edited colour)", ldm=self.ldm,
                    seed=seed, steps=self.plan.steps, strength=self.plan.strength, guidance=guidance)

    def reference(self, kind: str, i: int) -> tuple[torch.Tensor, bool | None]:
        """The reference image of task i and whether it matches its prompt."""
        family = "t2i" if kind == "text-to-image" else "i2i"
        if (family, i) not in self._references:
            from flowgraphs.result import measure

            image = reference_image(self.task(kind, i))
            match = measure(image, image, [self.prompts[i]], self.world.scorer)[0].prompt_match
            self._references[(family, i)] = (image, match)
        return self._references[(family, i)]

    def run_config(self, i: int, protocol: str, link: dict[str, Any], uplink: dict[str, Any],
                   downlink: dict[str, Any], *, resume: str = "channel-aware", n_es: int = 1, image_at: str = "es",
                   radio: str = "link", **settings: Any):
        """The RunConfig of task i: the hops' [link], [uplink], [downlink] settings, the plan's task settings
        and any other run `settings` (e.g. image_format, image_quality)."""
        from flowgraphs.config import config_from_dict

        plan = self.plan
        return config_from_dict({"link": link, "uplink": uplink, "downlink": downlink}, protocol=protocol,
                                prompt=self.prompts[i], seed=1000 + i, resume=resume, steps=plan.steps,
                                strength=plan.strength, guidance=plan.guidance, model=plan.model, n_es=n_es,
                                image_at=image_at, radio=radio, **settings)

    def run(self, config, task) -> tuple[torch.Tensor, dict[str, Any]]:
        """(image, numbers) of one protocol run (flowgraphs.runner.run_protocol)."""
        from flowgraphs import runner

        try:
            out = runner.run_protocol(config, task, self.session)
        finally:
            self.restore_threads()
        return out.image, graph_numbers(out.graph)

    def runs(self, configs: list, tasks: list) -> list[tuple[torch.Tensor, dict[str, Any]]]:
        """(image, numbers) of several protocol runs as one batch (flowgraphs.runner.run_batch)."""
        from flowgraphs import runner

        try:
            outs = runner.run_batch(configs, tasks, self.session)
        finally:
            self.restore_threads()
        return [(out.image, graph_numbers(out.graph)) for out in outs]

    def seed_config(self, i: int, image_at: str, link: dict[str, Any] | None = None,
                    uplink_snr_db: float = UPLINK_SNR_DB):
        """EIUG with an analog downlink on AWGN at 0 dB: the configuration the baselines run under (they send
        nothing) and whose stages make the ES's seed."""
        return self.run_config(i, SEED_PROTOCOL, {"scheme": "analog", "channel": "awgn", **(link or {})},
                               {"scheme": "digital", "snr_db": uplink_snr_db}, {"snr_db": 0.0}, image_at=image_at)

    def baseline(self, kind: str, name: str, i: int, config) -> tuple[torch.Tensor, dict[str, Any]]:
        """(image, numbers) of a zero-transmission baseline of task i (flowgraphs.protocols.baselines;
        `prompt-only`, `ue-local`, each optionally `@K`), run once per task: prompt-only ignores the input
        image, and ue-local of a text-to-image task is prompt-only."""
        from flowgraphs.protocols.baselines import baseline_task
        from flowgraphs.runner import run_baseline

        task = self.task(kind, i)
        if task.image is None:
            name = name.replace("ue-local", "prompt-only")
        key = (name, "i2i" if name.startswith("ue-local") else "any", i)
        if key not in self._baselines:
            try:
                run = run_baseline(name, config, baseline_task(task), self.session)
            finally:
                self.restore_threads()
            self._baselines[key] = (run.image, graph_numbers(run.graph))
        return self._baselines[key]

    def noise_seed(self, kind: str, name: str, i: int, config) -> tuple[torch.Tensor, dict[str, Any]]:
        """(image, numbers) of the sceptic who is told the ES's noise seed (`noise-seed@K`), its control
        message on `config`'s downlink; InputError where the UE lacks the input image (img2img-es)."""
        from flowgraphs.runner import run_baseline

        try:
            run = run_baseline(name, config, self.task(kind, i), self.session)
        finally:
            self.restore_threads()
        return run.image, graph_numbers(run.graph)

    def calibration(self, kind: str, indices: list[int]) -> list[dict[str, Any]]:
        """Per task: each metric's change on imperceptible variants of its reference (VARIANTS), and the
        reader's embedding of a clean render of its prompt (the realism set)."""
        from meg_phy import scenes

        refs = torch.cat([self.reference(kind, i)[0] for i in indices])
        renders = torch.stack([scenes.render(scenes.complete(scenes.parse_prompt(self.prompts[i]), 1000 + i), 1000 + i)
                               for i in indices])
        records = [{"task": i, "variants": {}} for i in indices]
        for name, make in VARIANTS.items():
            changed = torch.cat([make(refs[j:j + 1], 1000 + i) for j, i in enumerate(indices)])
            fid = self.world.fidelity(changed, refs)
            dist = self.world.feature_distance(changed, refs)
            mse = (changed - refs).double().pow(2).mean(dim=(1, 2, 3)).tolist()
            for j, r in enumerate(records):
                r["variants"][name] = {"fidelity": fid[j] - 1.0, "feature_distance": dist[j], "mse": mse[j]}
        embed = getattr(self.world, "embedding", None)
        if embed is not None:
            for r, e in zip(records, embed(renders), strict=True):
                r["render_embedding"] = e
        return records


def _shift(image: torch.Tensor, _seed: int) -> torch.Tensor:
    """One pixel to the right, the first column repeated."""
    return torch.cat([image[..., :1], image[..., :-1]], dim=-1)


def _webp(image: torch.Tensor, _seed: int, quality: int = 95) -> torch.Tensor:
    import io

    from PIL import Image

    from meg_phy.images import from_pil, to_pil

    buf = io.BytesIO()
    to_pil(image[0]).save(buf, format="WEBP", quality=quality)
    buf.seek(0)
    return from_pil(Image.open(buf).convert("RGB"))


def _noise(image: torch.Tensor, seed: int, psnr_db: float = 35.0) -> torch.Tensor:
    sigma = 10 ** (-psnr_db / 20)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (image + noise).clamp(0, 1)


VARIANTS = {"shift-1px": _shift, "webp-q95": _webp, "noise-35db": _noise}
"""Imperceptible variants of a reference: what a metric does on changes nobody would notice sets
the non-inferiority margin (meg_common.stats.margin_from)."""
CALIBRATED = ("fidelity", "feature_distance")
"""The metrics whose change the calibration turns into a margin (PSNR's change is reported beside)."""


def calibration(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The calibration's per-task records pooled: each metric's change on each variant (mean, 95 % interval,
    n), the variants' PSNR, and each metric's margin (meg_common.stats.margin_from)."""
    if not records:
        return {}
    names = list(records[0]["variants"])
    out: dict[str, Any] = {"n": len(records), "variants": {}, "margin": {}}
    for name in names:
        vs = [r["variants"][name] for r in records]
        out["variants"][name] = {m: stats.mean([v[m] for v in vs]) for m in CALIBRATED}
        out["variants"][name]["psnr_db"] = stats.pooled_psnr([v["mse"] for v in vs])
    for m in CALIBRATED:
        out["margin"][m] = stats.margin_from([[r["variants"][name][m] for r in records] for name in names])["value"]
    out["rule"] = stats.margin_from([])["rule"]
    return out


def _start_numba_threads(threads: int) -> None:
    """Start numba's thread pool once and let its parallel regions (the LDPC decoder) use `threads` of it: the
    same count as PyTorch and ONNX Runtime (which follows PyTorch's, meg_phy.runtime), so N workers on N cores
    never run N x cores threads."""
    try:
        import numba
        from numba.np.ufunc import parallel
    except ImportError:  # no numba: nothing resets the OpenMP runtime
        return
    launch = getattr(parallel, "_launch_threads", None)
    if launch is not None:
        launch()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def reference_image(task) -> torch.Tensor:
    """(1, 3, H, W): the task run whole on one node over no link (unsplit, noiseless, uncompressed), with the
    model calls and noise of the protocols' stages, so an ideal split run reproduces it."""
    ldm = task.ldm
    cond = ldm.encode_prompt(task.prompt or "", guidance=task.guidance)
    seed = ldm.start(None, task.image, strength=task.strength, steps=task.steps,
                     generator=torch.Generator().manual_seed(task.seed))
    return ldm.decode(ldm.denoise(seed, cond)).detach().clamp(0, 1)


def graph_numbers(graph) -> dict[str, Any]:
    """Compute and transmission numbers of one run's flowgraph."""
    records = graph.records
    by = {d: sum(r.symbols for r in records if r.direction == d) for d in ("uplink", "downlink", "backhaul")}
    down = [r for r in records if r.direction == "downlink"]
    es = [c for node, c in graph.compute.items() if node != "UE"]
    totals = graph.totals()
    return {
        "ue_steps": graph.compute["UE"]["steps"], "es_steps": sum(c["steps"] for c in es),
        "ue_seconds": graph.compute["UE"]["seconds"], "es_seconds": sum(c["seconds"] for c in es),
        "ue_work": graph.compute["UE"]["work"], "es_work": sum(c["work"] for c in es),
        "uplink": by["uplink"], "downlink": by["downlink"], "backhaul": by["backhaul"],
        "air": by["uplink"] + by["downlink"], "backhaul_bits": totals["backhaul_bits"],
        "control": sum(r.symbols for r in records if r.payload == "control"),
        "airtime_s": totals["airtime_s"], "bits": totals["bits"],
        "delivered": all(r.delivered for r in records), "payloads_lost": sum(not r.delivered for r in records),
        "downlink_delivered": (sum(r.delivered for r in down) / len(down)) if down else None,
    }


def score(harness: Harness, kind: str, indices: list[int], outs: list) -> list[dict[str, Any]]:
    """Per-task records of (image, numbers) outcomes, every one scored against its task's one reference:
    prompt match, fidelity, feature distance, MSE, PSNR, SSIM, plus the run's numbers."""
    from flowgraphs.result import measure

    images = torch.cat([image for image, _ in outs])
    refs_and_matches = [harness.reference(kind, i) for i in indices]
    refs = torch.cat([r for r, _ in refs_and_matches])
    prompts = [harness.prompts[i] for i in indices]
    qualities = measure(images, refs, prompts, harness.world.scorer)
    fidelity = harness.world.fidelity(images, refs)
    distance = harness.world.feature_distance(images, refs)
    embed = getattr(harness.world, "embedding", None)
    embeddings = None if embed is None else embed(images)
    records = []
    for j, (i, (_, numbers), q, (_, ref_match)) in enumerate(zip(indices, outs, qualities, refs_and_matches,
                                                                   strict=True)):
        records.append({"task": i, "prompt_match": q.prompt_match, "reference_match": ref_match,
                        "fidelity": fidelity[j], "feature_distance": None if distance is None else distance[j],
                        "mse": q.mse, "psnr_db": q.psnr_db, "ssim": q.ssim, "identical": q.identical,
                        **{k: (round(v, 4) if k.endswith("seconds") else v) for k, v in numbers.items()}})
        if embeddings is not None:
            records[-1]["embedding"] = embeddings[j]
    return records


__all__ = ["BASELINE_KEYS", "CALIBRATED", "VARIANTS", "Harness", "calibration", "NO_CHANNEL", "Point", "Timing", "chunks", "collect", "graph_numbers", "paired",
           "make_setup", "plan_matches", "quality", "reference_image", "rows", "run_units", "score", "setup", "unit_key",
           "units"]
