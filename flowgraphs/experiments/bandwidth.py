"""Quality against bandwidth (`meg-phy bandwidth`): every downlink scheme at a budget of N channel uses per image.

A budget is N complex channel uses per task: resource elements that carry the payload (coded bits or analog
values); pilots, cyclic prefix and the empty tail of the last frame are reported (`air_symbols`), not charged
(link_models.budget). At fixed SNRs (Es/N0 per channel use, `snr_db` of the links) and N on a grid, each
series is an ordinary protocol run per task (flowgraphs.runner): EIUG for a seed, CENTRALIZED for an image,
its downlink the series' scheme on the point's channel with `channel_uses = N` (a hop's defaults otherwise:
one resource block, LMMSE estimation, HARQ; the MCS open loop from the BLER table) and an ideal uplink. The
hop sends under the budget (flowgraphs.hops, link_models.budget) and the transfer table chooses what fits
(flowgraphs.transfer):

- `seed-analog`: EIUG's seed (the latent at the split step, V values = ceil(V/2) uses) on the analog link,
  repeated and combined to exactly N uses (maximum-ratio weights 1/variance), then the UE resumes
  channel-aware from the combined variance. N < V/2: no point (the seed does not fit; nothing is faked).
- `softcast`: SoftCast of the image (meg_phy.codecs.softcast). Its metadata goes first on the hop's digital
  control link (link-adapted, HARQ) and is charged to the budget; the values take every use left, exactly N
  in all (chunks chosen so the metadata fits, values repeated and combined beyond the image's last chunk). A
  lost metadata block loses the image.
- `softcast-meta-free`: the same with its metadata as free, intact side information (`side_info = "free"`,
  an optimistic SoftCast: the values take all N uses); the gap to `softcast` is what the metadata costs.
- `image-digital`: the CENTRALIZED image as WebP (RunConfig.image_format) at the best quality that fits.
- `seed-digital`: the seed as the digital seed path encodes it (meg_phy.codecs.encode_seed), at the finest of
  float32, float16, int8, int4 that fits.
- `image-capacity`, `seed-capacity`: the bound (a capacity hop): the best quality (format) whose payload B
  bits satisfies B <= N log2(1 + SNR) (link_models.budget.capacity_bits), delivered intact.
- `prompt-only`: the zero-transmission baseline (flowgraphs.protocols.baselines), one flat line per kind.

Digital series: the best payload that the fit rule of link_models.budget lets into N (planning with the
larger of the BLER target, 10 %, and the hop link's own first-try BLER at that SNR, measured once per link
on 256 codewords) is sent with the link's own HARQ under the budget, so a digital series never spends more
than N. A payload still corrupt (or one that never fit) is lost as in every protocol run, with the transfer
table's stand-in (flowgraphs.transfer): a mid-grey image, or, for a seed, generation from scratch with the
whole schedule. A series' numbers are its downlink hop's record (HopRecord.budget).

Every point is scored against the case study's one reference per task, with the campaign runtime's worker,
world, tasks and evaluator (flowgraphs.experiments.campaign). Units are (kind, series, channel, SNR,
budget) x a chunk of tasks, so an interrupted sweep resumes; a point's link draws are keyed by the point,
the task and the carrier. Two grids share the units: quality against N at `snrs`, and quality against SNR at
`fixed_uses`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from flowgraphs.experiments import campaign as rt
from link_models import budget
from meg_common import stats

KINDS = ("text-to-image", "img2img-es")
"""Task kinds where the ES holds everything, so the downlink payload is the whole transmission."""
USES = (64, 128, 256, 512, 1024, 2048, 4096)
SNRS = (-5.0, 0.0, 10.0)
SNR_SWEEP = (-10.0, -5.0, 0.0, 5.0, 10.0, 20.0)
SEED_FORMATS = ("float32", "float16", "int8", "int4")
"""Digital seed formats, finest first (meg_phy.codecs.seed)."""
MAX_QUALITY = 100
BASELINE = "prompt-only"
NO_CHANNEL = rt.NO_CHANNEL


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    payload: str
    """seed | image | none."""
    scheme: str
    """The downlink's scheme: analog | softcast | digital | capacity | none."""
    side_info: str = "session"
    """RunConfig.side_info: 'session' (the analog seed's shape and schedule agreed in advance; SoftCast's
    metadata on air, charged to the budget) or 'free' (SoftCast's metadata too)."""

    @property
    def protocol(self) -> str:
        """EIUG for a seed (the ES denoises to the split step, the UE finishes), CENTRALIZED for an image."""
        return "EIUG" if self.payload == "seed" else "CENTRALIZED"


SERIES = {s.key: s for s in (
    Series("seed-analog", "seed, analog, repetition + MRC (EIUG)", "seed", "analog"),
    Series("softcast", "image, SoftCast (CENTRALIZED)", "image", "softcast"),
    Series("softcast-meta-free", "image, SoftCast, metadata not charged (optimistic)", "image", "softcast", "free"),
    Series("image-digital", "image, WebP, link-adapted (CENTRALIZED)", "image", "digital"),
    Series("seed-digital", "seed, digital, link-adapted (EIUG)", "seed", "digital"),
    Series("image-capacity", "image, WebP at capacity (bound)", "image", "capacity"),
    Series("seed-capacity", "seed, digital at capacity (bound)", "seed", "capacity"),
    Series(BASELINE, "prompt-only: UE generates from its prompt (0 uses)", "none", "none"),
)}
SWEPT = tuple(k for k in SERIES if k != BASELINE)


@dataclass(frozen=True)
class Plan:
    """What a bandwidth sweep runs (`fixed_uses` None: the seed's own channel uses, resolved by `resolve`)."""

    n_tasks: int = 100
    chunk: int = 25
    kinds: tuple[str, ...] = ("text-to-image",)
    series: tuple[str, ...] = SWEPT
    channels: tuple[str, ...] = ("awgn",)
    snrs: tuple[float, ...] = SNRS
    uses: tuple[int, ...] = USES
    snr_sweep: tuple[float, ...] = SNR_SWEEP
    fixed_uses: int | None = None
    steps: int = 20
    strength: float = 0.7
    guidance: float | None = 3.0
    model: str | None = None
    evaluator: str | None = None
    lost_seed: str = "from-scratch"
    """What the UE resumes from when no seed arrived: the protocols' rule (flowgraphs.transfer) (before it, a sweep resumed from
    fresh noise at the split step; a folder made then holds no such field and is not resumed)."""

    @classmethod
    def quick(cls, model: str | None = None) -> Plan:
        return cls(n_tasks=16, chunk=16, model=model)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class Point(rt.Point):
    uses: int

    @property
    def key(self) -> str:
        return f"bw|{self.kind}|{self.series}|{self.channel}|{self.snr_key}|{self.uses}"


def seed_uses(ldm) -> int:
    """Channel uses of one seed on the analog link: two latent values per complex use."""
    return math.ceil(ldm.latent_channels * ldm.latent_size[0] * ldm.latent_size[1] / 2)


def resolve(plan: Plan, session=None) -> Plan:
    """The plan with `fixed_uses` set (None: the seed's channel uses of the plan's model)."""
    if plan.fixed_uses is not None:
        return plan
    from flowgraphs.session import Session

    return replace(plan, fixed_uses=seed_uses((session or Session()).model(plan.model)))


def points(plan: Plan) -> list[Point]:
    """Baselines first (one per kind), then every (kind, series, channel, SNR, budget) of both grids."""
    if plan.fixed_uses is None:
        raise ValueError("resolve the plan first (fixed_uses)")
    out = [Point(kind, BASELINE, NO_CHANNEL, None, 0) for kind in plan.kinds]
    for kind in plan.kinds:
        for series in plan.series:
            if series == BASELINE:
                continue
            for channel in plan.channels:
                grid = [(s, n) for s in plan.snrs for n in plan.uses]
                grid += [(s, plan.fixed_uses) for s in plan.snr_sweep]
                out += [Point(kind, series, channel, float(s), int(n)) for s, n in grid]
    return list(dict.fromkeys(out))


def campaign(plan: Plan) -> list[Any]:
    return rt.units(points(plan), plan, run_unit)


# ---- one worker's state ------------------------------------------------------------------------------
UPLINK = {"scheme": "digital", "channel": "ideal", "estimator": "perfect"}
"""The uplink of every series: the prompt reaches the ES intact (the sweep measures the downlink alone)."""


class Worker(rt.Harness):
    """The campaign's worker (session, world, tasks, references, baselines); a series at a point is one protocol
    run per task."""

    def config(self, point: Point, i: int):
        """Task i's configuration at a point: the series' protocol, its downlink's scheme at the point's channel
        and SNR with a budget of the point's uses (MCS open loop from the BLER table: a budget is planned for
        one payload at a known SNR, not by outer-loop adaptation, whose state belongs to a UE's session)."""
        series = SERIES[point.series]
        return self.run_config(i, series.protocol, {"scheme": series.scheme, "channel": point.channel,
                                                    "snr_db": point.snr_db, "mcs": "table"},
                               UPLINK, {"channel_uses": point.uses}, side_info=series.side_info)

    def links(self, point: Point):
        """config -> its hops' link factory: the session's links, their draws keyed by the point, the task and
        the carrier (every series at a point and task meets its own channel)."""
        from meg_common.executors import unit_seed

        def factory(config):
            return lambda spec, _seed: self.session.link(spec, unit_seed(config.seed, f"{point.key}|{spec.carrier}"))
        return factory

    # -- one task at one point: (image, numbers) ---------------------------------------------------------
    def outcome(self, point: Point, i: int):
        from flowgraphs import runner

        if point.series == BASELINE:
            image, _ = self.baseline(point.kind, BASELINE, i, self.seed_config(i, "ue"))
            return image, {"uses": 0, "air_symbols": 0, "delivered": True, "fits": True, "setting": None}
        try:
            out = runner.run_batch([self.config(point, i)], [self.task(point.kind, i)], self.session,
                                   link_factory=self.links(point))[0]
        finally:
            self.restore_threads()
        (record,) = [r for r in out.graph.records if r.direction == "downlink"]
        return out.image, numbers(point, record)


def numbers(point: Point, record) -> dict[str, Any]:
    """A series' numbers at a point from its downlink's hop record (HopRecord.budget): the uses charged to
    the budget, the symbols on air, whether the payload fitted and arrived, what was chosen to fit."""
    scheme, spent = SERIES[point.series].scheme, record.budget
    fits = spent["fits"]
    if scheme == "capacity":   # the bound: the whole budget, nothing on air
        return {"uses": point.uses if fits else 0, "air_symbols": 0, "delivered": record.delivered, "fits": fits,
                "setting": spent["setting"], "payload_bits": spent["payload_bits"],
                "capacity_bits": budget.capacity_bits(point.uses, point.snr_db, point.channel)}
    out = {"uses": spent["spent"], "air_symbols": record.symbols, "delivered": record.delivered, "fits": fits,
           "setting": spent["copies"] if point.series == "seed-analog" else spent["setting"]}
    if scheme in ("digital", "softcast") and point.series != "softcast-meta-free":
        out.update(mcs_index=spent["mcs_index"], planning_bler=spent["planning_bler"])
    if scheme == "digital":
        out["payload_bits"] = spent["payload_bits"]
    if "side_bits" in spent:
        out["side_bits"] = spent["side_bits"]
    if "transmissions" in spent:
        out["transmissions"] = spent["transmissions"]
    if record.noise_var is not None:
        out.update(noise_var=record.noise_var, payload_values=record.values)
    return out


def make_setup(plan: Plan):
    return rt.make_setup(Worker, plan)


def run_unit(worker: Worker, point_data: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    """One chunk of one point: per-task records, or why the point has no value (the seed does not fit)."""
    point = Point(**point_data)
    if point.series == "seed-analog":
        need = seed_uses(worker.ldm)
        if point.uses < need:
            return {"point": point_data, "skipped": f"the seed takes {need} channel uses on the analog link, the "
                                                    f"budget is {point.uses}: no analog-seed point below it"}
    outs = [worker.outcome(point, i) for i in indices]
    return {"point": point_data, "records": rt.score(worker, point.kind, indices, outs)}


# ---- pooling -----------------------------------------------------------------------------------------
def collect(results: dict[str, Any]) -> tuple[dict[Point, list[dict[str, Any]]], list[dict[str, Any]]]:
    return rt.collect(results, Point, lambda point, data, why: {**data, "why": why})


def row(point: Point, records: list[dict[str, Any]], baseline: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One point pooled over its tasks: every figure with its 95 % interval (meg_common.stats)."""
    series = SERIES[point.series]
    out: dict[str, Any] = {
        "series": point.series, "label": series.label, "payload": series.payload, "scheme": series.scheme,
        "task_kind": point.kind, "channel": None if point.channel == NO_CHANNEL else point.channel,
        "snr_db": point.snr_db, "uses": point.uses, "n": len(records),
        **rt.quality(records, ("fidelity", "ssim", "feature_distance")),
        "uses_spent": stats.mean([r["uses"] for r in records]),
        "max_uses_spent": max(r["uses"] for r in records),
        "air_symbols": stats.mean([r["air_symbols"] for r in records]),
        "delivered": stats.rate(sum(bool(r["delivered"]) for r in records), len(records)),
        "fits": stats.rate(sum(bool(r["fits"]) for r in records), len(records)),
        "settings": sorted({str(r["setting"]) for r in records}),
    }
    for key in ("mcs_index", "planning_bler"):  # the same for every task of a point
        out[key] = records[0].get(key)
    bits = [r["payload_bits"] for r in records if r.get("payload_bits") is not None]
    out["payload_bits"] = stats.mean(bits) if bits else None
    if baseline is not None and point.series != BASELINE:
        out["paired"] = {"prompt-only": rt.paired(records, baseline, ("fidelity",))}
    return out


def rows(merged: dict[Point, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rt.rows(merged, row, lambda p: Point(p.kind, BASELINE, NO_CHANNEL, None, 0))


def plan_matches(out, plan: Plan) -> None:
    """Refuse to resume a folder made with another plan."""
    rt.plan_matches(out, plan, "bandwidth sweep")


# ---- figure and report -------------------------------------------------------------------------------
FIGURE_METRICS = (("fidelity", "fidelity to the reference"), ("psnr_db", "PSNR vs reference (dB)"))


def figure(rows_: list[dict[str, Any]], path, kind: str, channel: str, plan: Plan):
    """Per metric (rows): quality against channel uses at each SNR, and against SNR at `fixed_uses`; error
    bars are 95 % intervals, prompt-only a line and band (figures.py style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowgraphs.experiments.figures import _save, _value, style

    mine = [r for r in rows_ if r["task_kind"] == kind and r["channel"] in (channel, None)]
    base = [r for r in mine if r["series"] == BASELINE]
    panels = [("uses", s) for s in plan.snrs] + [("snr", plan.fixed_uses)]
    fig, axes = plt.subplots(len(FIGURE_METRICS), len(panels), figsize=(4.3 * len(panels), 3.8 * len(FIGURE_METRICS)),
                             squeeze=False)
    for mi, (metric, label) in enumerate(FIGURE_METRICS):
        for pi, (axis, fixed) in enumerate(panels):
            ax = axes[mi][pi]
            for series in plan.series:
                if series == BASELINE:
                    continue
                pts = [r for r in mine if r["series"] == series and
                       (r["snr_db"] == fixed if axis == "uses" else r["uses"] == fixed)]
                x_of = (lambda r: r["uses"]) if axis == "uses" else (lambda r: r["snr_db"])
                vals = sorted(((x_of(r), _value(r, metric)) for r in pts), key=lambda xv: xv[0])
                vals = [(x, v) for x, v in vals if v is not None]
                if not vals:
                    continue
                colour, line, marker = style(series)
                ax.errorbar([x for x, _ in vals], [v[0] for _, v in vals],
                            yerr=[[v[1] for _, v in vals], [v[2] for _, v in vals]], color=colour, linestyle=line,
                            marker=marker or ".", markersize=4, capsize=2, label=SERIES[series].label)
            for r in base:
                v = _value(r, metric)
                if v is not None:
                    colour, line, _ = style(BASELINE)
                    ax.axhline(v[0], color=colour, linestyle=line, linewidth=1.2, label=r["label"])
                    ax.axhspan(v[0] - v[1], v[0] + v[2], color=colour, alpha=0.15)
            if axis == "uses":
                ax.set_xscale("log", base=2)
                ax.set_xlabel(f"channel uses per image, {channel} {fixed:g} dB")
            else:
                ax.set_xlabel(f"SNR (dB), {channel}, {fixed} channel uses")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if metric == "fidelity":
                ax.set_ylim(-0.03, 1.03)
    axes[0][0].legend(fontsize=6, loc="best")
    fig.suptitle(f"Quality against bandwidth, {kind}, {channel}: {plan.n_tasks} tasks per point, 95 % intervals",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def report(rows_: list[dict[str, Any]], plan: Plan, skipped: list[dict[str, Any]], model: dict[str, Any],
           versions: dict[str, Any], seconds: float) -> str:
    """The markdown section of the report: setup, rules, one table per (kind, channel, SNR) and the SNR sweep."""
    from flowgraphs.experiments.paper import ci

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "—"
        text = ci(r["fidelity"])
        if r["delivered"]["value"] is not None and r["delivered"]["value"] < 1:
            text += f" ({r['delivered']['k']}/{r['n']} delivered)"
        return text

    lines = [
        "## Quality against bandwidth",
        "",
        f"*Measured by `meg-phy bandwidth` ({seconds / 60:.1f} min wall), commit "
        f"`{versions.get('commit')}`; model latent {model.get('latent_shape')}, images {model.get('resolution')}; "
        f"{plan.n_tasks} tasks per point.*",
        "",
        "Fidelity to the reference (mean [95 % interval]) of each series at a budget of N channel uses per image "
        "(payload-carrying resource elements; pilots and cyclic prefix not charged). Series: "
        + "; ".join(f"`{k}` {s.label}" for k, s in SERIES.items()) + ". Rules: docs/reproduce.md, "
        "\"Quality against bandwidth\". — : no point (the analog seed does not fit below its own size). "
        "A payload that does not fit or is not delivered scores as its lost value (a grey image; for a seed, the "
        "UE generates from scratch).",
        "",
    ]
    by = {(r["task_kind"], r["series"], r["channel"], r["snr_db"], r["uses"]): r for r in rows_}
    series = [s for s in plan.series if s != BASELINE]
    for kind in plan.kinds:
        base = by.get((kind, BASELINE, None, None, 0))
        if base is not None:
            lines += [f"Prompt-only ({kind}): fidelity {ci(base['fidelity'])}, prompt accuracy "
                      f"{ci(base['prompt_accuracy'])}.", ""]
        for channel in plan.channels:
            for snr in plan.snrs:
                lines += [f"### {kind}, {channel}, {snr:g} dB: fidelity against channel uses", "",
                          "| series | " + " | ".join(str(n) for n in plan.uses) + " |",
                          "| --- |" + " --- |" * len(plan.uses)]
                lines += [f"| {s} | " + " | ".join(cell(by.get((kind, s, channel, snr, n))) for n in plan.uses) + " |"
                          for s in series]
                lines.append("")
            lines += [f"### {kind}, {channel}: fidelity against SNR at {plan.fixed_uses} channel uses", "",
                      "| series | " + " | ".join(f"{s:g} dB" for s in plan.snr_sweep) + " |",
                      "| --- |" + " --- |" * len(plan.snr_sweep)]
            lines += [f"| {s} | " + " | ".join(cell(by.get((kind, s, channel, snr, plan.fixed_uses)))
                                                for snr in plan.snr_sweep) + " |" for s in series]
            lines.append("")
    if skipped:
        lines += [f"No point ({len(skipped)}): " + "; ".join(sorted({s["why"] for s in skipped})) + ".", ""]
    return "\n".join(lines)


__all__ = ["Plan", "Point", "SERIES", "Worker", "campaign", "collect", "figure", "make_setup", "points", "report",
           "resolve", "row", "rows", "run_unit"]
