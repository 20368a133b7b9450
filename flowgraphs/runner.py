"""Run a protocol on a task: the run itself, its noiseless reference, and the CENTRALIZED baseline.

`run_protocol` is one flowgraph execution. `evaluate` adds what every run reports (protocols.md): the
reference (same task, ideal links), quality against it, and the ratio of channel symbols to CENTRALIZED
on the same task and hop configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from flowgraphs import protocols
from flowgraphs.config import RunConfig
from flowgraphs.graph import Flowgraph
from flowgraphs.hops import LinkFactory
from flowgraphs.stages import Stages
from flowgraphs.task import Task, load_scorer, make_task


@dataclass
class Outcome:
    """One flowgraph execution: the image the UE ends with, and the accounted graph."""

    config: RunConfig
    image: torch.Tensor
    graph: Flowgraph

    def accounting(self) -> dict[str, Any]:
        return {"hops": [r.to_dict() for r in self.graph.records],
                "compute": {n: {"steps": c["steps"], "seconds": round(c["seconds"], 4)}
                            for n, c in self.graph.compute.items()},
                "totals": self.graph.totals()}


def link_factory_for(config: RunConfig) -> LinkFactory | None:
    """How hops reach the air: link_models simulation (None = default), or a radio via flowgraphs.radio_link."""
    if config.radio == "link":
        return None
    from flowgraphs.radio_link import radio_link_factory

    return radio_link_factory(config.radio, config.uri)


def effective(config: RunConfig) -> RunConfig:
    """Single-ES protocols use ES1 only, whatever n_es says."""
    return replace(config, n_es=1) if config.protocol in protocols.SINGLE_ES else config


def run_protocol(config: RunConfig, task: Task | None = None, link_factory: LinkFactory | None = None) -> Outcome:
    config = effective(config)
    task = task or make_task(config)
    graph = Flowgraph(config, link_factory)
    image = protocols.get(config.protocol)(Stages(graph, task))
    return Outcome(config, image.detach().clamp(0, 1), graph)


def quality(image: torch.Tensor, reference: torch.Tensor, prompt: str, scorer=None) -> dict[str, Any]:
    """Prompt match (embedded evaluator; None when it cannot read the prompt), PSNR and SSIM against the reference.

    PSNR of two identical images is infinite; it is reported as None (null) with `identical: true`.
    """
    from meg_common.errors import InputError
    from meg_phy.metrics import prompt_matches, psnr, ssim

    try:
        match = prompt_matches(image, [prompt], scorer or load_scorer())[0]
    except InputError:
        match = None
    value = float(psnr(image, reference))
    return {"prompt_match": match, "psnr_db": value if math.isfinite(value) else None,
            "ssim": float(ssim(image, reference)), "identical": bool(torch.equal(image, reference))}


def evaluate(config: RunConfig, link_factory: LinkFactory | None = None, task: Task | None = None,
             baseline: Outcome | None = None) -> tuple[dict[str, Any], Outcome, Outcome]:
    """The run, its reference and the baseline; returns (result dict, run, reference)."""
    task = task or make_task(config)
    run = run_protocol(config, task, link_factory)
    reference = run_protocol(config.ideal(), task)
    if config.protocol == "CENTRALIZED":
        baseline = run
    elif baseline is None:
        baseline = run_protocol(replace(config, protocol="CENTRALIZED"), task, link_factory)
    totals = run.graph.totals()
    base_symbols = baseline.graph.totals()["symbols"]
    result = {
        "protocol": config.protocol,
        "config": effective(config).to_dict(),
        "task": {"prompt": task.prompt, "input_image": task.image_source, "steps": task.steps,
                 "strength": task.strength, "guidance": task.guidance, "seed": task.seed},
        **run.accounting(),
        "quality": quality(run.image, reference.image, task.prompt),
        "reference": {"prompt_match": quality(reference.image, reference.image, task.prompt)["prompt_match"],
                      "totals": reference.graph.totals()},
        "baseline": {"protocol": "CENTRALIZED", "totals": baseline.graph.totals()},
    }
    result["totals"]["symbols_ratio_to_centralized"] = totals["symbols"] / base_symbols if base_symbols else None
    used = {r.name for r in run.graph.records} | {r.name.rsplit("-", 1)[0] for r in run.graph.records}
    result["unused_hop_overrides"] = sorted(set(config.hops) - used)
    return result, run, reference
