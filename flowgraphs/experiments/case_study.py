"""The case study of Zhong et al. on the embedded model: text-guided img2img over a sweep of SNRs.

Series (what goes down from the ES, and how): seeds (analog with channel-aware resume, analog resumed
naively, digital), sketches (analog, digital) and the CENTRALIZED baseline (digital compressed image,
analog pixels). Every point runs the protocol on the same N tasks (prompt + rendered input image + seed);
quality is measured against each task's noiseless reference (same protocol, ideal links).

Link setup: the swept SNR is the downlink's (ES -> UE), whose scheme is the series'; uplink hops (prompt,
input image or seed) are digital at a fixed good SNR, so the curves isolate what the downlink payload
does. Every point is checkpointed atomically under DIR/points/, references under DIR/references/ (as
safetensors), so an interrupted sweep resumes where it stopped. One Session (model, evaluator, links) serves
the whole sweep.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from flowgraphs.config import RunConfig, config_from_dict
from flowgraphs.protocols import PROTOCOLS
from flowgraphs.result import RunResult, measure, summarise
from flowgraphs.runner import run_protocol
from flowgraphs.session import Session
from flowgraphs.task import make_task
from meg_common.io import atomic_write_bytes, atomic_write_json, read_json


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    protocol: str
    payload: str
    scheme: str
    resume: str = "channel-aware"


SERIES = (
    Series("seed-analog-aware", "seed, analog, channel-aware resume (EIUG)", "EIUG", "seed", "analog"),
    Series("seed-analog-naive", "seed, analog, naive resume (EIUG)", "EIUG", "seed", "analog", "naive"),
    Series("seed-digital", "seed, digital int8 + LDPC (EIUG)", "EIUG", "seed", "digital"),
    Series("sketch-analog", "sketch, analog pixels (ESUC)", "ESUC", "sketch", "analog"),
    Series("sketch-digital", "sketch, digital WebP + LDPC (ESUC)", "ESUC", "sketch", "digital"),
    Series("centralized-digital", "CENTRALIZED, digital WebP + LDPC", "CENTRALIZED", "image", "digital"),
    Series("centralized-analog", "CENTRALIZED, analog pixels", "CENTRALIZED", "image", "analog"),
)


@dataclass(frozen=True)
class Plan:
    """What a sweep runs: SNRs, number of tasks, and the fixed settings of every run."""

    snrs: tuple[float, ...]
    n_tasks: int
    uplink_snr_db: float = 20.0
    channel: str = "awgn"
    steps: int = 20
    strength: float = 0.7
    guidance: float = 3.0
    model: str | None = None
    evaluator: str | None = None
    series: tuple[str, ...] = tuple(s.key for s in SERIES)

    @classmethod
    def quick(cls, model: str | None = None) -> Plan:
        return cls(snrs=(-10.0, -5.0, 0.0, 5.0, 10.0, 20.0), n_tasks=8, model=model)

    @classmethod
    def full(cls, model: str | None = None) -> Plan:
        return cls(snrs=(-10.0, -7.5, -5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0), n_tasks=24, model=model)


def tasks(n: int) -> list[tuple[str, int]]:
    """(prompt, seed) of the n tasks: prompts drawn from the embedded vocabulary with a fixed generator."""
    from meg_phy import scenes

    attrs = scenes.sample_attributes(torch.Generator().manual_seed(2024), n)
    return [(scenes.make_prompt(a), 1000 + i) for i, a in enumerate(attrs)]


def point_config(plan: Plan, series: Series, snr_db: float | None, prompt: str, seed: int) -> RunConfig:
    """The run of one task at one SNR (None: the noiseless reference)."""
    downlink = {"scheme": series.scheme, "snr_db": 20.0 if snr_db is None else snr_db, "channel": plan.channel}
    data = {"uplink": {"scheme": "digital", "snr_db": plan.uplink_snr_db, "channel": plan.channel},
            "downlink": downlink}
    config = config_from_dict(data, protocol=series.protocol, prompt=prompt, seed=seed, resume=series.resume,
                              steps=plan.steps, strength=plan.strength, guidance=plan.guidance, model=plan.model,
                              n_es=1)
    return config.ideal() if snr_db is None else config


def _name(series: Series, snr_db: float) -> str:
    return f"{series.key}_{snr_db:+.1f}dB.json"


def reference(out: Path, plan: Plan, series: Series, i: int, prompt: str, seed: int,
              session: Session | None = None) -> torch.Tensor:
    """The noiseless reference image of task i for a series (cached exactly, as safetensors, under
    DIR/references/: no pickle is ever loaded)."""
    from safetensors.torch import load, save

    path = out / "references" / f"{series.key}_{i:03d}.safetensors"
    if path.exists():
        return load(path.read_bytes())["image"]
    image = run_protocol(point_config(plan, series, None, prompt, seed), session=session).image
    atomic_write_bytes(path, save({"image": image.contiguous()}))
    return image


def run_point(out: Path, plan: Plan, series: Series, snr_db: float, session: Session | None = None) -> dict[str, Any]:
    """One (series, SNR) point over every task; returns (and checkpoints) its row."""
    path = out / "points" / _name(series, snr_db)
    if path.exists():
        return read_json(path)
    session = session or Session(evaluator=plan.evaluator)
    runs, refs, prompts = [], [], []
    for i, (prompt, seed) in enumerate(tasks(plan.n_tasks)):
        config = point_config(plan, series, snr_db, prompt, seed)
        task = make_task(config, session)
        runs.append((run_protocol(config, task, session), task))
        refs.append(reference(out, plan, series, i, prompt, seed, session))
        prompts.append(prompt)
    images, refs = torch.cat([run.image for run, _ in runs]), torch.cat(refs)
    qualities = measure(images, refs, prompts, session.scorer(plan.evaluator))
    results = [RunResult.of(run, task, q) for (run, task), q in zip(runs, qualities, strict=True)]
    pooled = summarise(qualities)
    reference_accuracy = summarise(measure(refs, refs, prompts, session.scorer(plan.evaluator)))["prompt_accuracy"]
    down = [h for r in results for h in r.hops if h.direction == "downlink"]
    row = {
        "series": series.key, "label": series.label, "protocol": series.protocol, "payload": series.payload,
        "scheme": series.scheme, "resume": series.resume, "snr_db": snr_db, "n": len(prompts),
        "prompt_accuracy": pooled["prompt_accuracy"],
        "reference_accuracy": reference_accuracy,
        "psnr_db": pooled["psnr_db"],
        "psnr_db_per_image": pooled["psnr_db_per_image"],
        "ssim": pooled["ssim"],
        "symbols": sum(r.symbols() for r in results) / len(results),
        "bits": sum(r.totals["bits"] for r in results) / len(results),
        "downlink_symbols": sum(h.symbols for h in down) / len(results),
        "downlink_attempts": sum(h.attempts for h in down) / len(down),
        "downlink_delivered": sum(h.delivered for h in down) / len(down),
    }
    atomic_write_json(path, row)
    return row


def overhead_table(out: Path, plan: Plan, session: Session | None = None) -> list[dict[str, Any]]:
    """Bits and channel symbols of every protocol (n_es = 2; analog and digital; image at the UE or the ES),
    on the first task at the uplink SNR (no retransmissions), with the ratio to CENTRALIZED."""
    path = out / "overhead.json"
    if path.exists():
        return read_json(path)["rows"]
    prompt, seed = tasks(1)[0]
    session = session or Session(evaluator=plan.evaluator)
    rows = []
    for scheme in ("analog", "digital"):
        for image_at in ("ue", "es"):
            for name in PROTOCOLS:
                config = config_from_dict({}, protocol=name, prompt=prompt, seed=seed, steps=plan.steps,
                                          strength=plan.strength, guidance=plan.guidance, model=plan.model,
                                          n_es=2, scheme=scheme,
                                          snr_db=plan.uplink_snr_db, channel=plan.channel, image_at=image_at)
                graph = run_protocol(config, session=session).graph
                by_payload: dict[str, int] = {}
                for r in graph.records:
                    by_payload[r.payload] = by_payload.get(r.payload, 0) + r.symbols
                down = sum(r.symbols for r in graph.records if r.direction == "downlink")
                rows.append({"protocol": name, "scheme": scheme, "image_at": image_at, **graph.totals(),
                             "downlink_symbols": down, "symbols_by_payload": by_payload,
                             "attempts": sum(r.attempts for r in graph.records)})
    for row in rows:
        base = next(r for r in rows if r["protocol"] == "CENTRALIZED" and r["scheme"] == row["scheme"]
                    and r["image_at"] == row["image_at"])
        digital = next(r for r in rows if r["protocol"] == "CENTRALIZED" and r["scheme"] == "digital"
                       and r["image_at"] == row["image_at"])
        row["ratio_to_centralized"] = row["symbols"] / base["symbols"]
        row["ratio_to_centralized_digital"] = row["symbols"] / digital["symbols"]
        row["downlink_ratio_to_centralized_digital"] = row["downlink_symbols"] / digital["downlink_symbols"]
    atomic_write_json(path, {"plan": asdict(plan), "rows": rows})
    return rows


def all_points(plan: Plan) -> list[tuple[Series, float]]:
    return [(s, snr) for s in SERIES if s.key in plan.series for snr in plan.snrs]


def plan_matches(out: Path, plan: Plan) -> None:
    """Refuse to resume a folder made with another plan (its checkpoints would mix two configurations)."""
    from meg_common.errors import InputError

    path = out / "plan.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != json.loads(json.dumps(asdict(plan))):
            raise InputError(f"{out} holds a sweep with another configuration ({path}); use a new --out, "
                             f"or delete it to start over")
    else:
        atomic_write_json(path, asdict(plan))
