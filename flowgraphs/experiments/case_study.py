"""The case study of Zhong et al. as a harness whose verdicts can come out negative.

Tasks: `n_tasks` prompts (and, for img2img, input images) from the scene world (flowgraphs.experiments.world),
in three kinds: `text-to-image` (the ES's image is what the UE wants: the seed carries what the prompt
leaves open), `img2img-es` (the input image is at the ES), `img2img-ue` (at the UE, uploaded by protocols
that need it at an ES). img2img tasks share their prompts, images and references.

One reference per task: the unsplit, noiseless, uncompressed LDM output (`reference_image`: the same model
calls as the protocols' stages, on one node). Every series, baseline and protocol is scored against it.

Design points: (task kind, series, channel, SNR, n_es [, swept direction]) over the same tasks; the zero-
transmission baselines `prompt-only` and `ue-local` (flowgraphs.protocols.baselines) are one point per task
kind. Units, chunks, resume, the worker's `Harness` (session, world, tasks, references, baselines) and
pooling are the campaign runtime's (flowgraphs.experiments.campaign); this module is the experiment on it:
its series, plans, points, the run configuration of a series and `run_unit` (the per-task records of one
chunk of one point).

Per-task record: prompt match (and the reference's), fidelity, feature distance, MSE, PSNR, SSIM, UE and ES
denoising steps and compute seconds, symbols on the uplink, downlink, backhaul and air, airtime, delivery.
`rows` pools them with confidence intervals (meg_common.stats); `flowgraphs.experiments.verdicts`
turns paired comparisons into claims.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from flowgraphs.experiments import campaign as rt
from flowgraphs.experiments.campaign import BASELINE_KEYS, NO_CHANNEL
from flowgraphs.experiments.campaign import Harness as _Worker
from flowgraphs.experiments.world import unpack
from meg_common import stats
from meg_common.vocabulary import time_varying

KINDS = ("text-to-image", "img2img-es", "img2img-ue")
UE_SEEDED = ("UIEG", "CIAG", "UIDG", "UIDCG")
"""Protocols that make their seed from the UE's image (text-to-image: from the UE's own noise)."""


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
    run: tuple[tuple[str, Any], ...] = ()
    """Other run settings (e.g. ("image_quality", 30)): CENTRALIZED's rate-quality curve."""
    k: int | None = None
    """A sceptic's UE schedule length (`name@K`); None: the full schedule."""


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
    # CENTRALIZED's rate-quality curve: WebP quality levels and lossless (PNG), link adapted; the
    # less-communication verdict searches it (with analog pixels and SoftCast) for the cheapest configuration
    # of non-inferior quality (the default WebP q75 is centralized-digital)
    *(Series(f"centralized-digital-q{q}", f"CENTRALIZED, digital WebP q{q} + LDPC", "CENTRALIZED", "image", "digital",
             run=(("image_quality", q),)) for q in (1, 10, 30, 50, 90)),
    Series("centralized-digital-lossless", "CENTRALIZED, digital lossless PNG + LDPC", "CENTRALIZED", "image",
           "digital", run=(("image_format", "png"),)),
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
FULL_STEPS = 20
"""The full schedule (the plans' `steps`): `noise-seed@20` is the ES's run reproduced."""
SCEPTIC_STEPS = (4, 6, 10, 14)
"""The shorter schedules a UE alone may run."""
SCEPTICS = (
    *(Series(f"noise-seed@{k}", f"noise-seed@{k}: the ES's noise seed in a control message, UE alone, {k}-step schedule",
             "noise-seed", "control", "digital", k=k) for k in (*SCEPTIC_STEPS, FULL_STEPS)),
    *(Series(f"prompt-only@{k}", f"prompt-only@{k}: UE from its prompt, own noise, {k}-step schedule (0 symbols)",
             "prompt-only", "none", "none", k=k) for k in SCEPTIC_STEPS),
    *(Series(f"ue-local@{k}", f"ue-local@{k}: UE runs the task itself, own noise, {k}-step schedule (0 symbols)",
             "ue-local", "none", "none", k=k) for k in SCEPTIC_STEPS),
)
"""The sceptics who know the system: `prompt-only` and `ue-local` are the members at the full
schedule; `noise-seed@K` sends the ES's noise seed (a point per channel and SNR), the others send nothing (a
point per task kind)."""
CALIBRATION = "calibration"
"""The point (one per reference family) that measures each metric on imperceptible variants of the references
and embeds clean renders of the prompts (campaign.Harness.calibration)."""
SERIES = {s.key: s for s in PAPER + PROTOCOL_SERIES + BASELINES + SCEPTICS}
SEED_SERIES = "seed-analog-aware"


def alone(key: str) -> bool:
    """A UE-alone series with nothing on air (prompt-only, ue-local, at any K): one point per task kind."""
    return key.partition("@")[0] in BASELINE_KEYS


def sceptic(key: str) -> bool:
    """A series of the sceptic (UE alone, or told the noise seed), not a protocol run."""
    return alone(key) or key.startswith("noise-seed")


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


PEDESTRIAN = (("arq_max", 8), ("fading", "continuous"), ("speed_mps", 0.833))
"""The core plan's UE: RLC ARQ up to 8 retransmissions after HARQ, continuous fading at 3 km/h."""
FADING_ONLY = ("fading", "speed_mps")
"""Plan link settings that apply only to channels whose fading evolves in time (TDL, CDL: vocabulary.
time_varying; LinkConfig turns continuous fading into block fading elsewhere, but the run's record would still
name it)."""


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
    link: tuple[tuple[str, Any], ...] = ()
    """[link] settings of every series' hops (a series' own `link` wins), e.g. the core plan's pedestrian UE:
    ARQ on every digital hop, continuous fading at 3 km/h on TDL/CDL (FADING_ONLY settings are left out on
    AWGN, which has no fading). Left out of to_dict when empty, so earlier campaigns resume."""
    runtime: str = "torch"
    """Where the UNet runs (meg_phy.runtime: 'torch', 'onnx', 'auto'); ONNX Runtime agrees with PyTorch within
    the campaign tolerance, not bit for bit. Left out of to_dict when 'torch'."""
    batched: bool = False
    """Run a unit's tasks as one batch (flowgraphs.runner.run_batch; every protocol): about 2-3x the tasks per
    CPU second, results equal to task by task up to float rounding of the batched model kernels (not bit for
    bit, so off by default; benchmarks/bench_campaign.py measures both). Left out of to_dict when False."""

    @classmethod
    def quick(cls, model: str | None = None) -> Plan:
        """About 580 runs: 32 tasks per row, AWGN and TDL-A, the low-SNR points, every task kind."""
        # the sceptics everywhere; CENTRALIZED's curve where the ten-minute budget allows: its low end (WebP q1,
        # q10) beside the default q75, lossless PNG at 0 dB only (at -5 dB it costs minutes of LDPC decoding per
        # point); the full plan has q1-q90 and lossless everywhere
        noise = tuple(f"noise-seed@{k}" for k in (*SCEPTIC_STEPS, FULL_STEPS))
        alone_ = tuple(f"{b}@{k}" for b in BASELINE_KEYS for k in SCEPTIC_STEPS)
        return cls(grids=(
            Grid(("img2img-ue",), ("seed-analog-aware", "seed-digital", "centralized-digital", "centralized-digital-q1",
                                   "centralized-digital-q10") + noise, ("awgn",), (-5.0, 0.0)),
            Grid(("img2img-ue",), ("centralized-digital-lossless",), ("awgn",), (0.0,)),
            Grid(("img2img-ue",), ("seed-analog-aware", "centralized-digital") + noise, ("tdl-a",), (-5.0,)),
            Grid(("img2img-ue",), ("centralized-analog", "centralized-softcast"), ("awgn",), (-5.0,)),
            Grid(("text-to-image", "img2img-es"), ("seed-analog-aware", "centralized-digital",
                                                   "centralized-digital-q1") + noise, ("awgn",), (-5.0,)),
            Grid(("text-to-image", "img2img-es", "img2img-ue"), alone_, (), ()),
        ), n_tasks=32, chunk=32, model=model, batched=True, runtime="auto")

    @classmethod
    def full(cls, model: str | None = None) -> Plan:
        snrs = (-10.0, -5.0, -2.5, 0.0, 2.5, 5.0, 10.0, 20.0)
        paper = tuple(s.key for s in PAPER if s.radio == "link")
        protocols = tuple(s.key for s in PROTOCOL_SERIES)
        noise = tuple(s.key for s in SCEPTICS if s.protocol == "noise-seed")
        alone_ = tuple(s.key for s in SCEPTICS if alone(s.key))
        return cls(grids=(
            Grid(KINDS, paper + noise, ("awgn", "tdl-a", "cdl-a"), snrs),
            Grid(KINDS, alone_, (), ()),
            Grid(("img2img-ue", "text-to-image"), protocols, ("awgn", "tdl-a"), (-5.0, 0.0, 5.0, 10.0, 20.0), (1, 2, 4)),
            Grid(("img2img-ue",), ("proto-UIEG", "proto-CIAG", "proto-UIDG", "proto-UIDCG"), ("awgn",),
                 (-5.0, 0.0, 5.0, 10.0, 20.0), (1, 2), swept="uplink"),
            Grid(("img2img-ue",), ("seed-analog-aware-sim", "centralized-digital-sim"), ("awgn",), (-5.0, 0.0, 5.0, 10.0, 20.0)),
        ), n_tasks=200, chunk=50, model=model)

    @classmethod
    def core(cls, model: str | None = None) -> Plan:
        """The claims' core run: 200 tasks per point, AWGN and TDL-A from -10 to 20 dB, every task
        kind; EIUG and ESUC with analog and digital links; the sceptics; CENTRALIZED's rate-quality curve (WebP
        q1-q75 and lossless, link adapted; analog pixels; SoftCast; the capacity bound). Every digital hop has
        OLLA, HARQ and RLC ARQ; the UE walks at 3 km/h (continuous fading on TDL-A)."""
        snrs = (-10.0, -5.0, 0.0, 5.0, 10.0, 20.0)
        meg = ("seed-analog-aware", "seed-digital", "sketch-analog", "sketch-digital")
        curve = ("centralized-digital", "centralized-digital-q1", "centralized-digital-q10", "centralized-digital-q50",
                 "centralized-digital-lossless", "centralized-analog", "centralized-softcast", "centralized-capacity")
        noise = tuple(s.key for s in SCEPTICS if s.protocol == "noise-seed")
        alone_ = tuple(s.key for s in SCEPTICS if alone(s.key))
        return cls(grids=(Grid(KINDS, meg + noise + curve, ("awgn", "tdl-a"), snrs), Grid(KINDS, alone_, (), ())),
                   n_tasks=200, chunk=50, model=model, link=PEDESTRIAN)

    def to_dict(self) -> dict[str, Any]:
        data = json.loads(json.dumps(asdict(self)))
        if data.get("mcs") is None:
            data.pop("mcs", None)
        if not data.get("batched"):
            data.pop("batched", None)
        if not data.get("link"):
            data.pop("link", None)
        if data.get("runtime") == "torch":
            data.pop("runtime", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        grids = tuple(Grid(**{k: tuple(v) if isinstance(v, list) else v for k, v in g.items()}) for g in data["grids"])
        link = tuple(tuple(kv) for kv in data.get("link", ()))
        return cls(**{**data, "grids": grids, "link": link})

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if any(k in g.kinds for g in self.grids))

    def series_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for g in self.grids for s in g.series))


@dataclass(frozen=True)
class Point(rt.Point):
    n_es: int
    swept: str = "downlink"

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.series}|{self.channel}|{self.snr_key}|n{self.n_es}|{self.swept}"


def points(plan: Plan) -> tuple[list[Point], list[dict[str, str]]]:
    """Every design point of the plan (baselines first, one per kind) and the series left out, with why."""
    from flowgraphs.protocols import SINGLE_ES

    kinds = plan.kinds()
    out = [Point(kind, key, NO_CHANNEL, None, 0) for kind in kinds for key in BASELINE_KEYS]
    # one calibration point per reference family (img2img tasks share their references)
    out += [Point(kind, CALIBRATION, NO_CHANNEL, None, 0) for kind in kinds
            if not (kind == "img2img-es" and "img2img-ue" in kinds)]
    hooks = []
    for grid in plan.grids:
        for key in grid.series:
            series = SERIES[key]
            why = missing(series)
            if why:
                hooks.append({"series": key, "why": why})
                continue
            if alone(key):  # nothing on air: one point per task kind
                out += [Point(kind, key, NO_CHANNEL, None, 0) for kind in grid.kinds]
                continue
            for kind in grid.kinds:
                for channel in grid.channels:
                    for snr in grid.snrs:
                        for n_es in grid.n_es:
                            n = 1 if series.protocol in SINGLE_ES else n_es
                            out.append(Point(kind, key, channel, float(snr), n, grid.swept))
    return list(dict.fromkeys(out)), list({h["series"]: h for h in hooks}.values())


# ---- one worker's state ------------------------------------------------------------------------------
class Harness(_Worker):
    """The campaign's worker (flowgraphs.experiments.campaign.Harness) with the case study's runs: a series'
    run configuration and its protocol runs, task by task or as one batch."""

    LINK_WARMUP_TBS = 300
    """A plan with a [link] UE (the core plan's pedestrian UE) has every task's UE mid-session on
    each OLLA link: its state starts from a 300-TB warm-up (flowgraphs.session); other plans, as before."""

    def __init__(self, plan):
        super().__init__(plan)
        self.session.link_warmup_tbs = self.LINK_WARMUP_TBS if getattr(plan, "link", ()) else 0

    def config(self, point: Point, i: int, image_at: str):
        series, plan = SERIES[point.series], self.plan
        up_snr, down_snr = (plan.uplink_snr_db, point.snr_db) if point.swept == "downlink" else \
            (point.snr_db, plan.uplink_snr_db)
        mcs = {} if plan.mcs is None else {"mcs": plan.mcs}
        common = {k: v for k, v in plan.link if time_varying(point.channel) or k not in FADING_ONLY}
        protocol = "CENTRALIZED" if series.protocol == "noise-seed" else series.protocol
        return self.run_config(i, protocol,
                               {"scheme": series.scheme, "channel": point.channel, **common, **mcs,
                                **dict(series.link)},
                               {"scheme": series.uplink_scheme or series.scheme, "snr_db": up_snr},
                               {"snr_db": down_snr}, resume=series.resume, n_es=max(1, point.n_es),
                               image_at=image_at, radio=series.radio, **dict(series.run))

    def outcome(self, point: Point, i: int):
        """(image, numbers) of task i at a point: a protocol run, a (cached) UE-alone run, or the sceptic told
        the noise seed."""
        from meg_common.errors import InputError

        if alone(point.series):
            if point.kind == "img2img-es" and point.series.startswith("ue-local@"):
                raise InputError(f"{point.series} does not apply to img2img-es: the UE lacks the input image")
            return self.baseline(point.kind, point.series, i,
                                 self.config(Point(point.kind, SEED_SERIES, "awgn", 0.0, 1), i, "ue"))
        if point.series.startswith("noise-seed"):
            return self.noise_seed(point.kind, point.series, i, self.config(point, i, self._image_at(point)))
        return self.run(self.config(point, i, self._image_at(point)), self.task(point.kind, i))

    def outcomes(self, point: Point, indices: list[int]) -> list:
        """(image, numbers) of every task of `indices` at a point: one batch (plan.batched:
        flowgraphs.runner.run_batch) or task by task (batches of one)."""
        local = getattr(self.session.placement, "name", "local") == "local"   # ES actors: runs go one by one
        if not (self.plan.batched and local and not sceptic(point.series) and len(indices) > 1):
            return [self.outcome(point, i) for i in indices]
        image_at = self._image_at(point)
        return self.runs([self.config(point, i, image_at) for i in indices], [self.task(point.kind, i) for i in indices])

    def _image_at(self, point: Point) -> str:
        protocol = SERIES[point.series].protocol
        return {"img2img-es": "es", "img2img-ue": "ue"}.get(point.kind) or ("ue" if protocol in UE_SEEDED else "es")


def setup(plan_data: dict[str, Any]) -> Harness:
    return rt.setup(Harness, Plan, plan_data)


def make_setup(plan: Plan):
    return rt.make_setup(Harness, plan)


def run_unit(harness: Harness, point_data: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    """One chunk of one design point: the per-task records (JSON), or why the point does not apply."""
    from meg_common.errors import InputError

    point = Point(**point_data)
    if point.series == CALIBRATION:
        return {"point": point_data, "records": harness.calibration(point.kind, indices)}
    try:
        outs = harness.outcomes(point, indices)
    except InputError as exc:  # e.g. a protocol that needs the image where this task kind does not have it
        return {"point": point_data, "skipped": str(exc)}
    return {"point": point_data, "records": rt.score(harness, point.kind, indices, outs)}


# ---- pooling -----------------------------------------------------------------------------------------
METRICS = ("fidelity", "feature_distance", "ssim", "ue_steps", "es_steps", "ue_seconds", "es_seconds", "airtime_s")
MODEL_LIMITED_BELOW = 0.5
"""Prompt adherence is labelled model-limited where the noiseless reference itself follows fewer than half
of its prompts (the embedded model: about 0.2): no series can show adherence the model does not have."""
USER_QUALITY_KINDS = ("text-to-image", "img2img-ue")
"""Task kinds whose user wants any good image for the prompt (adherence and realism), not only the ES's."""


def do_nothing(kind: str) -> str:
    """The do-nothing baseline of a task kind: the UE finishing the task itself where it holds the input image
    (img2img-ue), else generating from its prompt."""
    return "ue-local" if kind == "img2img-ue" else "prompt-only"


def row(point: Point, records: list[dict[str, Any]], baseline: list[dict[str, Any]] | None,
        do_nothing_records: list[dict[str, Any]] | None = None, renders: dict[int, Any] | None = None
        ) -> dict[str, Any]:
    """One design point pooled over its tasks, every figure with its 95 % interval (stats), plus paired
    differences against prompt-only, against the kind's do-nothing baseline and against the noiseless
    reference; `quality` groups the user's metrics (fidelity, PSNR, feature distance; for text-to-image and
    img2img-ue also prompt adherence and realism: KID to clean renders of the same prompts, `renders` by task,
    in the reader's feature space)."""
    series = SERIES[point.series]
    matches = [float(bool(r["prompt_match"])) for r in records]
    refs = [float(bool(r["reference_match"])) for r in records]
    out: dict[str, Any] = {
        "series": point.series, "label": series.label, "protocol": series.protocol, "payload": series.payload,
        "scheme": series.scheme, "radio": series.radio, "resume": series.resume, "task_kind": point.kind,
        "channel": None if point.channel == NO_CHANNEL else point.channel, "snr_db": point.snr_db,
        "swept": None if point.snr_db is None else point.swept, "n_es": point.n_es, "n": len(records),
        "k": series.k, "reference_accuracy": stats.rate(int(sum(refs)), len(refs)), **rt.quality(records, METRICS)}
    identical = [bool(r.get("identical")) for r in records]
    out["identical"] = stats.rate(sum(identical), len(identical))
    out["symbols"] = {d: sum(r.get(d, 0) for r in records) / len(records)
                      for d in ("uplink", "downlink", "backhaul", "air", "control")}
    out["air_symbols"] = stats.mean([r["air"] for r in records])
    out["backhaul_bits"] = sum(r["backhaul_bits"] for r in records) / len(records)
    down = [r["downlink_delivered"] for r in records if r["downlink_delivered"] is not None]
    out["downlink_delivered"] = sum(down) / len(down) if down else None
    quality = {"fidelity": out["fidelity"], "psnr_db": out["psnr_db"], "feature_distance": out["feature_distance"]}
    if point.kind in USER_QUALITY_KINDS:
        limited = (out["reference_accuracy"]["value"] or 0.0) < MODEL_LIMITED_BELOW
        quality["prompt_accuracy"] = {**out["prompt_accuracy"], "model_limited": limited}
        quality["realism"] = realism(records, renders)
    out["quality"] = quality
    out["paired"] = {"noiseless": {"prompt_accuracy": stats.paired_difference(matches, refs)}}
    if baseline is not None and point.series != "prompt-only":
        out["paired"]["prompt-only"] = rt.paired(records, baseline, ("fidelity", "prompt_accuracy"))
    nothing = do_nothing(point.kind)
    if do_nothing_records is not None and point.series != nothing:
        out["paired"][nothing] = rt.paired(records, do_nothing_records, ("fidelity", "prompt_accuracy"))
    return out


def realism(records: list[dict[str, Any]], renders: dict[int, Any] | None) -> dict[str, Any] | None:
    """KID (meg_common.stats.kid, with its 95 % interval) between the outputs and clean renders of the same
    prompts, both in the reader's feature space; None without embeddings."""
    if not renders:
        return None
    pairs = [(unpack(r["embedding"]), renders[r["task"]]) for r in records
             if r.get("embedding") and renders.get(r["task"]) is not None]
    if len(pairs) < 3:
        return None
    return {**stats.kid([a for a, _ in pairs], [b for _, b in pairs]), "n": len(pairs), "metric": "KID"}


def collect(results: dict[str, Any]) -> tuple[dict[Point, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Unit results -> the records of each point (chunks joined, in task order) and the skipped points."""
    return rt.collect(results, Point)


def calibration_records(merged: dict[Point, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The calibration points' per-task records (every reference family)."""
    return [r for p, recs in merged.items() if p.series == CALIBRATION for r in recs]


def calibration(merged: dict[Point, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each metric's change on imperceptible variants of the references, and the margins set from it
    (campaign.calibration); empty when the run has no calibration point."""
    return rt.calibration(calibration_records(merged))


def rows(merged: dict[Point, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    renders = {r["task"]: unpack(r["render_embedding"]) for r in calibration_records(merged)
               if r.get("render_embedding")}
    out = []
    for point, records in merged.items():
        if point.series == CALIBRATION:
            continue
        base = merged.get(Point(point.kind, "prompt-only", NO_CHANNEL, None, 0))
        nothing = merged.get(Point(point.kind, do_nothing(point.kind), NO_CHANNEL, None, 0))
        out.append(row(point, records, base, nothing, renders))
    return out


SLOW_LAST = ("centralized-digital-lossless",)
"""Series whose units run last within each chunk: the lossless image's LDPC decoding at low SNR is about
10 CPU minutes per 50-task unit on TDL-A at -10 dB, against seconds for most units, so an interrupted run
has every other point first. Only the order changes; each unit's result does not depend on it."""


def campaign(plan: Plan) -> list[Any]:
    """The units of a plan (meg_common.executors.Unit), baselines first, SLOW_LAST series last in a chunk."""
    ordered = sorted(points(plan)[0], key=lambda p: p.series in SLOW_LAST)   # stable: baselines stay first
    return rt.units(ordered, plan, run_unit)


def plan_matches(out: Path, plan: Plan) -> None:
    """Refuse to resume a folder made with another plan (its checkpoints would mix two configurations)."""
    rt.plan_matches(out, plan, "campaign")


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


__all__ = ["BASELINES", "CALIBRATION", "SCEPTICS", "alone", "calibration", "do_nothing", "sceptic", "Grid", "Harness", "KINDS", "PAPER", "PROTOCOL_SERIES", "Plan", "Point", "SERIES",
           "campaign", "collect", "make_setup", "points", "row", "rows", "run_unit", "setup"]
