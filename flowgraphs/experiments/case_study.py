"""The case study of Zhong et al. as a harness whose verdicts can come out negative (issue 10).

Tasks: `n_tasks` prompts (and, for img2img, input images) from the scene world (flowgraphs.experiments.world),
in three kinds: `text-to-image` (the ES's image is what the UE wants: the seed carries what the prompt
leaves open), `img2img-es` (the input image is at the ES), `img2img-ue` (at the UE, uploaded by protocols
that need it at an ES). img2img tasks share their prompts, images and references.

One reference per task: the unsplit, noiseless, uncompressed LDM output (`reference_image`: the same model
calls as the protocols' stages, on one node). Every series, baseline and protocol is scored against it.

Design points: (task kind, series, channel, SNR, n_es [, swept direction]) over the same tasks; the zero-
transmission baselines `prompt-only` and `ue-local` (flowgraphs.protocols.baselines) are one point per task
kind. A point's tasks are cut into chunks of `chunk` tasks; each chunk is one independent unit for
`meg_common.executors` (key: `unit_key`), whose result is the per-task records (`run_unit`), so a campaign
runs in this process or on Ray with identical results and resumes from the units already stored. Each
worker builds one `Harness` (session, world, tasks, references) with `setup`.

Per-task record: prompt match (and the reference's), fidelity, feature distance, MSE, PSNR, SSIM, UE and ES
denoising steps and compute seconds, symbols on the uplink, downlink, backhaul and air, airtime, delivery.
`rows` pools them with confidence intervals (meg_common.stats); `flowgraphs.experiments.verdicts`
turns paired comparisons into claims.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from meg_common import stats

KINDS = ("text-to-image", "img2img-es", "img2img-ue")
BASELINE_KEYS = ("prompt-only", "ue-local")
UE_SEEDED = ("UIEG", "CIAG", "UIDG", "UIDCG")
"""Protocols that make their seed from the UE's image (text-to-image: from the UE's own noise)."""
NO_CHANNEL = "none"


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    protocol: str
    payload: str
    scheme: str
    resume: str = "channel-aware"
    uplink_scheme: str | None = "digital"
    """Scheme of the uplink hops (None: the series' scheme on every hop)."""
    radio: str = "link"
    link: tuple[tuple[str, Any], ...] = ()
    """Extra [link] settings (e.g. ("mcs", "auto")); the series runs only if the setting exists."""
    needs: str | None = None
    """What the code base must offer for this series: 'setting:NAME' (a LinkSpec field) or 'scheme:NAME' (the hook
    for series whose link settings land later: without it the series is listed as not run, with why)."""


PAPER = (
    Series("seed-analog-aware", "seed, analog, channel-aware resume (EIUG)", "EIUG", "seed", "analog"),
    Series("seed-analog-naive", "seed, analog, naive resume (EIUG)", "EIUG", "seed", "analog", "naive"),
    Series("seed-digital", "seed, digital int8 + LDPC (EIUG)", "EIUG", "seed", "digital"),
    Series("sketch-analog", "sketch, analog pixels (ESUC)", "ESUC", "sketch", "analog"),
    Series("sketch-digital", "sketch, digital WebP + LDPC (ESUC)", "ESUC", "sketch", "digital"),
    Series("centralized-digital", "CENTRALIZED, digital WebP + LDPC", "CENTRALIZED", "image", "digital"),
    Series("centralized-analog", "CENTRALIZED, analog pixels", "CENTRALIZED", "image", "analog"),
    # the digital series use the link defaults (with link adaptation: MCS auto + HARQ, the fair digital);
    # the fixed-MCS one is the handicapped digital of before, SoftCast the equal-bandwidth analog image and
    # capacity the bound no digital scheme beats (each runs when the code base has its setting or scheme)
    Series("centralized-digital-fixed", "CENTRALIZED, digital WebP, fixed QPSK 1/2, blind retries", "CENTRALIZED",
           "image", "digital", link=(("mcs", "none"), ("harq", False)), needs="setting:mcs"),
    Series("centralized-softcast", "CENTRALIZED, SoftCast (equal bandwidth)", "CENTRALIZED", "image", "softcast",
           needs="scheme:softcast"),
    Series("centralized-capacity", "CENTRALIZED, capacity bound", "CENTRALIZED", "image", "capacity",
           needs="scheme:capacity"),
    # over the simulated impaired radio (CFO, SCO, IQ imbalance, ADC) beside the link-level series
    Series("seed-analog-aware-sim", "seed, analog, channel-aware (EIUG), --radio sim", "EIUG", "seed", "analog",
           radio="sim"),
    Series("centralized-digital-sim", "CENTRALIZED, digital WebP, --radio sim", "CENTRALIZED", "image", "digital",
           radio="sim"),
)
PROTOCOL_SERIES = tuple(
    Series(f"proto-{p}", f"{p}, analog links", p, "any", "analog", uplink_scheme=None)
    for p in ("CENTRALIZED", "UIEG", "EIUG", "CIAG", "ESUC", "UIDG", "DIUG", "DSUC", "UIDCG", "DCSUC"))
BASELINES = (
    Series("prompt-only", "prompt-only: UE generates from its prompt (0 symbols)", "prompt-only", "none", "none"),
    Series("ue-local", "ue-local: UE runs the whole task itself (0 symbols)", "ue-local", "none", "none"),
)
SERIES = {s.key: s for s in PAPER + PROTOCOL_SERIES + BASELINES}
SEED_SERIES = "seed-analog-aware"


def missing(series: Series) -> str | None:
    """Why a series cannot run on this code base yet (None: it can)."""
    from flowgraphs.config import SCHEMES, LinkSpec

    if series.needs is None:
        return None
    kind, name = series.needs.split(":")
    if kind == "setting" and name not in LinkSpec.field_names():
        return f"LinkSpec has no {name!r} setting yet (link-adaptation issue)"
    if kind == "scheme" and name not in SCHEMES:
        return f"no {name!r} link scheme yet (link-adaptation issue)"
    return None


@dataclass(frozen=True)
class Grid:
    """A product of design points: every kind x series x channel x SNR x n_es."""

    kinds: tuple[str, ...]
    series: tuple[str, ...]
    channels: tuple[str, ...]
    snrs: tuple[float, ...]
    n_es: tuple[int, ...] = (1,)
    swept: str = "downlink"
    """Which direction's SNR is swept; the other is at the plan's `uplink_snr_db`."""


@dataclass(frozen=True)
class Plan:
    """What a campaign runs: its grids, tasks, and the fixed settings of every run."""

    grids: tuple[Grid, ...]
    n_tasks: int
    chunk: int = 50
    uplink_snr_db: float = 20.0
    steps: int = 20
    strength: float = 0.7
    guidance: float | None = 3.0
    """None: the model's own default."""
    model: str | None = None
    evaluator: str | None = None
    mcs: str | int | None = None
    """`reproduce --mcs`: the MCS of every digital hop of the series that do not fix their own (None: the link
    default, 'auto'); left out of to_dict when None, so earlier campaigns resume."""
    batched: bool = False
    """Run a unit's tasks as one batch (flowgraphs.runner.run_batch; every protocol): about 2-3x the tasks per
    CPU second, results equal to task by task up to float rounding of the batched model kernels (not bit for
    bit, so off by default; benchmarks/bench_campaign.py measures both). Left out of to_dict when False."""

    @classmethod
    def quick(cls, model: str | None = None) -> Plan:
        """About 580 runs: 32 tasks per row, AWGN and TDL-A, the low-SNR points, every task kind."""
        return cls(grids=(
            Grid(("img2img-ue",), ("seed-analog-aware", "centralized-digital"), ("awgn",), (-5.0, 0.0)),
            Grid(("img2img-ue",), ("seed-analog-aware", "centralized-digital"), ("tdl-a",), (-5.0,)),
            Grid(("img2img-ue",), ("centralized-analog", "centralized-softcast"), ("awgn",), (-5.0,)),
            Grid(("text-to-image", "img2img-es"), ("seed-analog-aware", "centralized-digital"), ("awgn",), (-5.0,)),
        ), n_tasks=32, chunk=32, model=model)

    @classmethod
    def full(cls, model: str | None = None) -> Plan:
        snrs = (-10.0, -5.0, -2.5, 0.0, 2.5, 5.0, 10.0, 20.0)
        paper = tuple(s.key for s in PAPER if s.radio == "link")
        protocols = tuple(s.key for s in PROTOCOL_SERIES)
        return cls(grids=(
            Grid(KINDS, paper, ("awgn", "tdl-a", "cdl-a"), snrs),
            Grid(("img2img-ue", "text-to-image"), protocols, ("awgn", "tdl-a"), (-5.0, 0.0, 5.0, 10.0, 20.0), (1, 2, 4)),
            Grid(("img2img-ue",), ("proto-UIEG", "proto-CIAG", "proto-UIDG", "proto-UIDCG"), ("awgn",),
                 (-5.0, 0.0, 5.0, 10.0, 20.0), (1, 2), swept="uplink"),
            Grid(("img2img-ue",), ("seed-analog-aware-sim", "centralized-digital-sim"), ("awgn",), (-5.0, 0.0, 5.0, 10.0, 20.0)),
        ), n_tasks=200, chunk=50, model=model)

    def to_dict(self) -> dict[str, Any]:
        data = json.loads(json.dumps(asdict(self)))
        if data.get("mcs") is None:
            data.pop("mcs", None)
        if not data.get("batched"):
            data.pop("batched", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        grids = tuple(Grid(**{k: tuple(v) if isinstance(v, list) else v for k, v in g.items()}) for g in data["grids"])
        return cls(**{**data, "grids": grids})

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if any(k in g.kinds for g in self.grids))

    def series_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for g in self.grids for s in g.series))


@dataclass(frozen=True)
class Point:
    kind: str
    series: str
    channel: str
    snr_db: float | None
    n_es: int
    swept: str = "downlink"

    @property
    def key(self) -> str:
        snr = "none" if self.snr_db is None else f"{self.snr_db:+.1f}dB"
        return f"{self.kind}|{self.series}|{self.channel}|{snr}|n{self.n_es}|{self.swept}"


def points(plan: Plan) -> tuple[list[Point], list[dict[str, str]]]:
    """Every design point of the plan (baselines first, one per kind) and the series left out, with why."""
    from flowgraphs.protocols import SINGLE_ES

    out = [Point(kind, key, NO_CHANNEL, None, 0) for kind in plan.kinds() for key in BASELINE_KEYS]
    hooks = []
    for grid in plan.grids:
        for key in grid.series:
            series = SERIES[key]
            why = missing(series)
            if why:
                hooks.append({"series": key, "why": why})
                continue
            for kind in grid.kinds:
                for channel in grid.channels:
                    for snr in grid.snrs:
                        for n_es in grid.n_es:
                            n = 1 if series.protocol in SINGLE_ES else n_es
                            out.append(Point(kind, key, channel, float(snr), n, grid.swept))
    return list(dict.fromkeys(out)), list({h["series"]: h for h in hooks}.values())


def chunks(plan: Plan) -> list[list[int]]:
    return [list(range(i, min(i + plan.chunk, plan.n_tasks))) for i in range(0, plan.n_tasks, plan.chunk)]


def unit_key(point: Point, part: int) -> str:
    return f"{point.key}|chunk{part}"


# ---- one worker's state ------------------------------------------------------------------------------
class Harness:
    """What a worker keeps between units: the session (model, evaluator, links), the world, the tasks, the
    references and the baselines' outputs (both depend only on the task)."""

    def __init__(self, plan: Plan):
        from flowgraphs.experiments.world import load_world
        from flowgraphs.session import Session

        self.plan = plan
        self.session = Session(evaluator=plan.evaluator)
        self.world = load_world(plan.evaluator, self.session)
        self.ldm = self.session.model(plan.model)
        from meg_phy.memo import DenoiseMemo

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
        _start_numba_threads()
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

    def config(self, point: Point, i: int, image_at: str):
        from flowgraphs.config import config_from_dict

        series, plan = SERIES[point.series], self.plan
        up_snr, down_snr = (plan.uplink_snr_db, point.snr_db) if point.swept == "downlink" else \
            (point.snr_db, plan.uplink_snr_db)
        mcs = {} if plan.mcs is None else {"mcs": plan.mcs}
        data = {"link": {"scheme": series.scheme, "channel": point.channel, **mcs, **dict(series.link)},
                "uplink": {"scheme": series.uplink_scheme or series.scheme, "snr_db": up_snr},
                "downlink": {"snr_db": down_snr}}
        return config_from_dict(data, protocol=series.protocol, prompt=self.prompts[i], seed=1000 + i,
                                resume=series.resume, steps=plan.steps, strength=plan.strength,
                                guidance=plan.guidance, model=plan.model, n_es=max(1, point.n_es),
                                image_at=image_at, radio=series.radio)

    def outcome(self, point: Point, i: int):
        """(image, numbers) of task i at a point: a protocol run or a (cached) baseline run."""
        try:
            return self._outcome(point, i)
        finally:
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def outcomes(self, point: Point, indices: list[int]) -> list:
        """(image, numbers) of every task of `indices` at a point: one batch (plan.batched:
        flowgraphs.runner.run_batch) or task by task (batches of one)."""
        from flowgraphs import runner

        local = getattr(self.session.placement, "name", "local") == "local"   # ES actors: runs go one by one
        if not (self.plan.batched and local and point.series not in BASELINE_KEYS and len(indices) > 1):
            return [self.outcome(point, i) for i in indices]
        try:
            image_at = self._image_at(point)
            runs = runner.run_batch([self.config(point, i, image_at) for i in indices],
                             [self.task(point.kind, i) for i in indices], self.session)
            return [(run.image, graph_numbers(run.graph)) for run in runs]
        finally:
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def _image_at(self, point: Point) -> str:
        protocol = SERIES[point.series].protocol
        return {"img2img-es": "es", "img2img-ue": "ue"}.get(point.kind) or ("ue" if protocol in UE_SEEDED else "es")

    def _outcome(self, point: Point, i: int):
        from flowgraphs.protocols.baselines import baseline_task
        from flowgraphs.runner import run_baseline, run_protocol

        task = self.task(point.kind, i)
        if point.series in BASELINE_KEYS:
            name = "prompt-only" if task.image is None else point.series
            family = "i2i" if name == "ue-local" else "any"
            key = (name, family, i)
            if key not in self._baselines:
                config = self.config(Point(point.kind, SEED_SERIES, "awgn", 0.0, 1), i, "ue")
                run = run_baseline(name, config, baseline_task(task), self.session)
                self._baselines[key] = (run.image, graph_numbers(run.graph))
            return self._baselines[key]
        run = run_protocol(self.config(point, i, self._image_at(point)), task, self.session)
        return run.image, graph_numbers(run.graph)


UNIT_THREADS = 1
"""PyTorch threads per campaign unit (a unit is one task on the small embedded model: one thread is
the efficient choice on a CPU; scale out with more units, e.g. `--executor ray --workers N`)."""
MEMO_ENTRIES = 8192
"""Denoising results a worker keeps (a 4x8x8 seed is about 1.5 kB with its schedule): enough for a few
design points of 200 tasks between two that share the ES's work."""


def _start_numba_threads() -> None:
    try:
        from numba.np.ufunc import parallel
    except ImportError:  # no numba: nothing resets the OpenMP runtime
        return
    launch = getattr(parallel, "_launch_threads", None)
    if launch is not None:
        launch()


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
        "airtime_s": totals["airtime_s"], "bits": totals["bits"],
        "delivered": all(r.delivered for r in records), "payloads_lost": sum(not r.delivered for r in records),
        "downlink_delivered": (sum(r.delivered for r in down) / len(down)) if down else None,
    }


def setup(plan_data: dict[str, Any]) -> Harness:
    """Per-worker state (meg_common.executors `setup`): one Harness, built once."""
    return Harness(Plan.from_dict(plan_data))


def make_setup(plan: Plan):
    return partial(setup, plan.to_dict())


def run_unit(harness: Harness, point_data: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    """One chunk of one design point: the per-task records (JSON), or why the point does not apply."""
    from meg_common.errors import InputError

    point = Point(**point_data)
    try:
        outs = harness.outcomes(point, indices)
    except InputError as exc:  # e.g. a protocol that needs the image where this task kind does not have it
        return {"point": point_data, "skipped": str(exc)}
    return {"point": point_data, "records": score(harness, point.kind, indices, outs)}


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
    records = []
    for j, (i, (_, numbers), q, (_, ref_match)) in enumerate(zip(indices, outs, qualities, refs_and_matches,
                                                                   strict=True)):
        records.append({"task": i, "prompt_match": q.prompt_match, "reference_match": ref_match,
                        "fidelity": fidelity[j], "feature_distance": None if distance is None else distance[j],
                        "mse": q.mse, "psnr_db": q.psnr_db, "ssim": q.ssim, "identical": q.identical,
                        **{k: (round(v, 4) if k.endswith("seconds") else v) for k, v in numbers.items()}})
    return records


# ---- pooling -----------------------------------------------------------------------------------------
METRICS = ("fidelity", "feature_distance", "ssim", "ue_steps", "es_steps", "ue_seconds", "es_seconds", "airtime_s")


def row(point: Point, records: list[dict[str, Any]], baseline: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One design point pooled over its tasks, every figure with its 95 % interval (stats), plus paired
    differences against prompt-only on the same tasks and against the noiseless reference."""
    series = SERIES[point.series]
    matches = [bool(r["prompt_match"]) for r in records]
    refs = [bool(r["reference_match"]) for r in records]
    out: dict[str, Any] = {
        "series": point.series, "label": series.label, "protocol": series.protocol, "payload": series.payload,
        "scheme": series.scheme, "radio": series.radio, "resume": series.resume, "task_kind": point.kind,
        "channel": None if point.channel == NO_CHANNEL else point.channel, "snr_db": point.snr_db,
        "swept": None if point.snr_db is None else point.swept, "n_es": point.n_es, "n": len(records),
        "prompt_accuracy": stats.rate(sum(matches), len(matches)),
        "reference_accuracy": stats.rate(sum(refs), len(refs)),
        "psnr_db": stats.pooled_psnr([r["mse"] for r in records]),
    }
    for key in METRICS:
        values = [r[key] for r in records if r.get(key) is not None]
        out[key] = stats.mean(values) if values else None
    out["symbols"] = {d: sum(r[d] for r in records) / len(records) for d in ("uplink", "downlink", "backhaul", "air")}
    out["air_symbols"] = stats.mean([r["air"] for r in records])
    out["backhaul_bits"] = sum(r["backhaul_bits"] for r in records) / len(records)
    down = [r["downlink_delivered"] for r in records if r["downlink_delivered"] is not None]
    out["downlink_delivered"] = sum(down) / len(down) if down else None
    out["paired"] = {"noiseless": {"prompt_accuracy": stats.paired_difference(
        [float(m) for m in matches], [float(m) for m in refs])}}
    if baseline is not None and point.series != "prompt-only":
        base = {r["task"]: r for r in baseline}
        mine = [r for r in records if r["task"] in base]
        out["paired"]["prompt-only"] = {
            "fidelity": stats.paired_difference([r["fidelity"] for r in mine], [base[r["task"]]["fidelity"] for r in mine]),
            "prompt_accuracy": stats.paired_difference([float(bool(r["prompt_match"])) for r in mine],
                                                       [float(bool(base[r["task"]]["prompt_match"])) for r in mine]),
        }
    return out


def collect(results: dict[str, Any]) -> tuple[dict[Point, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Unit results -> the records of each point (chunks joined, in task order) and the skipped points."""
    merged: dict[Point, list[dict[str, Any]]] = {}
    skipped = {}
    for result in results.values():
        point = Point(**result["point"])
        if "skipped" in result:
            skipped[point] = {"point": point.key, "why": result["skipped"]}
            continue
        merged.setdefault(point, []).extend(result["records"])
    for point in merged:
        merged[point].sort(key=lambda r: r["task"])
    return {p: r for p, r in merged.items() if p not in skipped}, list(skipped.values())


def rows(merged: dict[Point, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for point, records in merged.items():
        base = merged.get(Point(point.kind, "prompt-only", NO_CHANNEL, None, 0))
        out.append(row(point, records, base))
    return out


def campaign(plan: Plan) -> list[Any]:
    """The units of a plan (meg_common.executors.Unit), baselines first."""
    from meg_common.executors import Unit

    pts, _ = points(plan)
    return [Unit(unit_key(p, part), run_unit, (asdict(p), idx)) for p in pts for part, idx in enumerate(chunks(plan))]


def plan_matches(out: Path, plan: Plan) -> None:
    """Refuse to resume a folder made with another plan (its checkpoints would mix two configurations)."""
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_json

    path = out / "plan.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != plan.to_dict():
            raise InputError(f"{out} holds a campaign with another configuration ({path}); use a new --out, "
                             f"or delete it to start over")
    else:
        atomic_write_json(path, plan.to_dict())


def restrict(plan: Plan, *, snrs=None, series=None, channels=None, kinds=None, n_es=None, tasks=None,
             chunk=None, evaluator=None) -> Plan:
    """The plan with command-line overrides applied (each None: unchanged); grids left empty are dropped."""
    grids = []
    for g in plan.grids:
        g = replace(g, snrs=tuple(snrs) if snrs else g.snrs,
                    series=tuple(s for s in g.series if s in series) if series else g.series,
                    channels=tuple(channels) if channels else g.channels,
                    kinds=tuple(k for k in g.kinds if k in kinds) if kinds else g.kinds,
                    n_es=tuple(n_es) if n_es else g.n_es)
        if g.series and g.kinds:
            grids.append(g)
    if series:
        covered = {s for g in grids for s in g.series}
        extra = tuple(s for s in series if s not in covered and s not in BASELINE_KEYS)
        if extra:
            base = plan.grids[0]
            grids.append(Grid(tuple(kinds) if kinds else base.kinds, extra, tuple(channels) if channels else base.channels,
                              tuple(snrs) if snrs else base.snrs, tuple(n_es) if n_es else base.n_es))
    if not grids:  # only baselines asked for: they run for the kinds asked for (or the plan's)
        grids.append(Grid(tuple(kinds) if kinds else plan.kinds(), (), (), ()))
    changes: dict[str, Any] = {"grids": tuple(grids)}
    if tasks is not None:
        changes["n_tasks"] = tasks
    if chunk is not None:
        changes["chunk"] = chunk
    if evaluator is not None:
        changes["evaluator"] = evaluator
    return replace(plan, **changes)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


__all__ = ["BASELINES", "Grid", "Harness", "KINDS", "PAPER", "PROTOCOL_SERIES", "Plan", "Point", "SERIES",
           "campaign", "collect", "make_setup", "points", "reference_image", "row", "rows", "run_unit", "setup"]
