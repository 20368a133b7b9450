"""What a run reports, typed: `RunResult` (result.json), `Quality` and the one function that measures it.

    result, run, reference = evaluate(config, session)      # flowgraphs.runner
    result.quality.psnr_db, result.totals["symbols"], result.symbols("downlink")
    result.save(out / "result.json"); RunResult.load(out / "result.json") == result

`result.json` is `RunResult.to_dict()`: protocol, config, task, hops, compute, totals, quality, reference,
baseline, unused_hop_overrides, versions, images (file names of the output and reference images, relative to
the folder of result.json). Its `config` runs again as it is: `meg-phy run --config result.json`.

Quality is measured by `measure` only (the run command, the demo and the case study all call it), against a
noiseless reference: prompt match read by the attribute evaluator, PSNR, SSIM, MSE. `summarise` pools many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from flowgraphs.config import RunConfig
from flowgraphs.hops import HopRecord
from flowgraphs.ledger import RunLedger
from meg_common.config import ConfigMixin

if TYPE_CHECKING:
    from flowgraphs.task import Task


@dataclass
class Outcome:
    """One flowgraph execution: the image the UE ends with, and the run's ledger of compute and hops."""

    config: RunConfig
    image: torch.Tensor
    graph: RunLedger


@dataclass(frozen=True)
class Quality(ConfigMixin):
    """How one output compares with its noiseless reference (result.json's `quality`)."""

    prompt_match: bool | None
    """Every attribute of the prompt read back by the evaluator; None when it cannot read this prompt."""
    psnr_db: float | None
    """None when the output is identical to the reference (PSNR = infinity)."""
    ssim: float
    identical: bool
    mse: float | None = None
    """Mean squared error per value in [0, 1] (what `summarise` pools into one PSNR over many images)."""


def measure(images: torch.Tensor, references: torch.Tensor, prompts: list[str], scorer) -> list[Quality]:
    """The quality of each image (B, 3, H, W) in [0, 1] against its reference, under its prompt.

    The evaluator reads the whole batch at once; prompts it cannot parse (another model's vocabulary) get
    prompt_match None.
    """
    from meg_common.errors import InputError
    from meg_phy.metrics import prompt_matches, psnr_per_image, ssim_per_image

    try:
        matches: list[bool | None] = list(prompt_matches(images, prompts, scorer))
    except InputError:
        matches = []
        for image, prompt in zip(images, prompts, strict=True):
            try:
                matches.append(prompt_matches(image[None], [prompt], scorer)[0])
            except InputError:
                matches.append(None)
    psnrs, ssims = psnr_per_image(images, references), ssim_per_image(images, references)
    return [Quality(prompt_match=m, psnr_db=p if math.isfinite(p) else None, ssim=s,
                    identical=bool(torch.equal(image, ref)), mse=float((image - ref).double().pow(2).mean()))
            for m, p, s, image, ref in zip(matches, psnrs, ssims, images, references, strict=True)]


def summarise(qualities: list[Quality]) -> dict[str, Any]:
    """Many images in one row: prompt accuracy (no match counts as a miss), PSNR of the mean squared error
    (None: all identical), per-image PSNR, mean SSIM."""
    n = len(qualities)
    mse = sum(q.mse for q in qualities) / n
    return {"prompt_accuracy": sum(map(bool, (q.prompt_match for q in qualities))) / n,
            "psnr_db": 10 * math.log10(1 / mse) if mse > 0 else None,
            "psnr_db_per_image": [q.psnr_db for q in qualities],
            "ssim": sum(q.ssim for q in qualities) / n}


@dataclass(frozen=True)
class TaskSummary(ConfigMixin):
    """The task of a run as result.json states it (the input image by its source, not its pixels)."""

    prompt: str
    input_image: str
    """'file:PATH' or 'scene:<prompt of the rendered input>'."""
    steps: int
    strength: float
    guidance: float
    seed: int

    @classmethod
    def of(cls, task: Task) -> TaskSummary:
        return cls(prompt=task.prompt, input_image=task.image_source, steps=task.steps, strength=task.strength,
                   guidance=task.guidance, seed=task.seed)


@dataclass
class RunResult(ConfigMixin):
    """One protocol run, as reported: what was run, every hop, compute per node, totals on air, quality."""

    config: RunConfig
    """The configuration the run used (`RunConfig.resolved()`); replaying it reruns the run."""
    task: TaskSummary
    hops: list[HopRecord]
    compute: dict[str, dict[str, Any]]
    """Node -> {"steps": denoising steps, "seconds": wall time, "work": latent elements x denoising steps}."""
    totals: dict[str, Any]
    """bits, symbols, airtime_s over every hop; air_symbols (uplink + downlink), backhaul_bits,
    backhaul_symbols (0 when wired), backhaul_transfer_s; symbols_ratio_to_centralized: air symbols over
    CENTRALIZED's (None without a baseline)."""
    quality: Quality
    reference: dict[str, Any] | None = None
    """The noiseless reference run: {"prompt_match", "totals"}."""
    baseline: dict[str, Any] | None = None
    """CENTRALIZED on the same task and links: {"protocol", "totals"}."""
    unused_hop_overrides: list[str] = field(default_factory=list)
    """[hops.*] settings naming hops this protocol does not have."""
    versions: dict[str, Any] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    """'output' / 'reference' -> image file, relative to the folder of result.json."""

    @property
    def protocol(self) -> str:
        return self.config.protocol

    def symbols(self, direction: str | None = None) -> int:
        """Channel symbols on air, over every hop or the hops of one direction (a broadcast counted once)."""
        return sum(h.symbols for h in self.hops if direction is None or h.direction == direction)

    @property
    def payloads_lost(self) -> int:
        return sum(not h.delivered for h in self.hops)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = "result") -> RunResult:
        """A RunResult from result.json data (the input image of its config need not exist any more)."""
        data = dict(data)
        data.pop("protocol", None)
        config = RunConfig.from_dict(data.pop("config", {}), where=f"{where} config", check_files=False)
        return cls(config=config, **cls.coerce_fields(data, where, partial=True))

    @classmethod
    def of(cls, run: Outcome, task: Task, quality: Quality, reference: Outcome | None = None,
           reference_quality: Quality | None = None, baseline: Outcome | None = None,
           images: dict[str, str] | None = None) -> RunResult:
        """The result of flowgraph execution `run` on `task`, with its measured quality; `reference` and
        `baseline` runs (when given) add their totals, and the symbol ratio to the baseline."""
        from meg_common.provenance import versions

        graph = run.graph
        totals: dict[str, Any] = dict(graph.totals())
        base_symbols = baseline.graph.totals()["air_symbols"] if baseline is not None else 0
        totals["symbols_ratio_to_centralized"] = totals["air_symbols"] / base_symbols if base_symbols else None
        used = {r.name for r in graph.records} | {r.name.rsplit("-", 1)[0] for r in graph.records}
        return cls(
            config=run.config, task=TaskSummary.of(task), hops=list(graph.records),
            compute={n: {"steps": c["steps"], "seconds": round(c["seconds"], 4), "work": c["work"]}
                     for n, c in graph.compute.items()},
            totals=totals, quality=quality,
            reference=None if reference is None else {
                "prompt_match": None if reference_quality is None else reference_quality.prompt_match,
                "totals": reference.graph.totals()},
            baseline=None if baseline is None else {"protocol": "CENTRALIZED", "totals": baseline.graph.totals()},
            unused_hop_overrides=sorted(set(run.config.hops) - used), versions=versions(), images=dict(images or {}))
