"""Run a protocol on a task: the run itself, its noiseless reference, and the CENTRALIZED baseline.

`run_protocol` is one flowgraph execution. `evaluate` adds what every run reports (protocols.md): the
reference (same task, ideal links), quality against it, and the ratio of channel symbols to CENTRALIZED
on the same task and hop configuration, as a `RunResult`. Both take the `Session` whose model, evaluator
and links they use (None: a new one, so nothing is shared with other runs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from flowgraphs import protocols
from flowgraphs.config import RunConfig
from flowgraphs.graph import Flowgraph
from flowgraphs.result import RunResult, measure
from flowgraphs.session import Session
from flowgraphs.stages import Stages
from flowgraphs.task import Task, make_task

IMAGES = {"output": "output.png", "reference": "reference.png"}
"""The image files of `meg-phy run`, beside result.json."""


@dataclass
class Outcome:
    """One flowgraph execution: the image the UE ends with, and the accounted graph."""

    config: RunConfig
    image: torch.Tensor
    graph: Flowgraph


def run_protocol(config: RunConfig, task: Task | None = None, session: Session | None = None) -> Outcome:
    """Execute the protocol of `config` (resolved: single-ES protocols use ES1) on `task` (default: the
    config's), with the model and links of `session`."""
    session = session or Session()
    config = config.resolved()
    task = task or make_task(config, session)
    graph = Flowgraph(config, session.link_factory(config))
    image = protocols.get(config.protocol)(Stages(graph, task, session.placement))
    return Outcome(config, image.detach().clamp(0, 1), graph)


def evaluate(config: RunConfig, session: Session | None = None, task: Task | None = None,
             baseline: Outcome | None = None) -> tuple[RunResult, Outcome, Outcome]:
    """The run, its reference and the baseline; returns (result, run, reference)."""
    session = session or Session()
    task = task or make_task(config, session)
    run = run_protocol(config, task, session)
    reference = run_protocol(config.ideal(), task, session)
    if run.config.protocol == "CENTRALIZED":
        baseline = run
    elif baseline is None:
        baseline = run_protocol(replace(config, protocol="CENTRALIZED"), task, session)
    scorer = session.scorer()
    quality = measure(run.image, reference.image, [task.prompt], scorer)[0]
    reference_quality = measure(reference.image, reference.image, [task.prompt], scorer)[0]
    result = RunResult.of(run, task, quality, reference=reference, reference_quality=reference_quality,
                          baseline=baseline, images=IMAGES)
    return result, run, reference
