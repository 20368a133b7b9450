"""Run a protocol: on a batch of tasks (the one path), its noiseless reference, and the CENTRALIZED baseline.

`run_batch` executes one protocol on many tasks at once, each with its own ledger (compute and hops), its
own links and generators; `run_protocol` is a batch of one. `evaluate` adds what every run reports
(protocols.md): the reference (same task, ideal links), quality against it, and the ratio of channel
symbols to CENTRALIZED on the same task and hop configuration, as a `RunResult`. All take the `Session`
whose model, evaluator and links they use (None: a new one, so nothing is shared with other runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from flowgraphs import protocols
from flowgraphs.config import RunConfig
from flowgraphs.hops import LinkFactory
from flowgraphs.ledger import RunLedger
from flowgraphs.result import Outcome, RunResult, measure
from flowgraphs.session import Session
from flowgraphs.stages import Stages
from flowgraphs.task import Task, make_task
from meg_common.errors import InputError

IMAGES = {"output": "output.png", "reference": "reference.png"}
"""The image files of `meg-phy run`, beside result.json."""
PER_TASK_FIELDS = ("seed", "prompt", "image")
"""RunConfig fields that may differ between the tasks of one batch; everything else is one setting."""


def check_batch(configs: Sequence[RunConfig]) -> None:
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


def run_batch(configs: Sequence[RunConfig], tasks: Sequence[Task], session: Session | None = None,
              flow: Callable | None = None, link_factory: Callable[[RunConfig], LinkFactory] | None = None
              ) -> list[Outcome]:
    """Run one protocol (`flow`: default the configs' protocol module's `run`) on every task as one batch;
    one Outcome per task, with that task's own ledger. The configs are resolved (single-ES protocols use
    ES1) and must differ only in PER_TASK_FIELDS. `link_factory(config)`: where that task's hops get their
    links (default `session.link_factory`)."""
    session = session or Session()
    configs = [c.resolved() for c in configs]
    check_batch(configs)
    if len(tasks) != len(configs):
        raise InputError(f"{len(configs)} configs for {len(tasks)} tasks; give one of each per task")
    flow = flow or protocols.get(configs[0].protocol)
    graphs = [RunLedger(c, (link_factory or session.link_factory)(c), session.link_warmup(c)) for c in configs]
    images = flow(Stages(graphs, list(tasks), session.placement))
    return [Outcome(c, images[i:i + 1].detach().clamp(0, 1), g)
            for i, (c, g) in enumerate(zip(configs, graphs, strict=True))]


def run_protocol(config: RunConfig, task: Task | None = None, session: Session | None = None) -> Outcome:
    """Execute the protocol of `config` on `task` (default: the config's), with the model and links of
    `session`: a batch of one."""
    session = session or Session()
    return run_batch([config], [task or make_task(config, session)], session)[0]


def run_baselines(name: str, configs: Sequence[RunConfig], tasks: Sequence[Task], session: Session | None = None,
                  steps: int | None = None) -> list[Outcome]:
    """Run baseline `name` (flowgraphs.protocols.baselines: `prompt-only`, `ue-local`, `noise-seed`, each
    optionally `@K`) on `tasks` as one batch, the UE on a K-step schedule (`steps` overrides K; neither: the
    task's). `prompt-only` and `ue-local` take tasks already `baseline_task` (the UE's own noise) and put
    nothing on air; `noise-seed` takes the ES's tasks and sends its control message on the configs' downlink.
    The configs supply the node set (UE + ES1) and, for noise-seed, the downlink."""
    from flowgraphs.protocols.baselines import flow_of, parse

    base, _ = parse(name)
    keep = {} if base == "noise-seed" else {"image_at": "ue"}
    configs = [replace(c, protocol="CENTRALIZED", n_es=1, **keep) for c in configs]
    flow = flow_of(name, image_at_ue=tasks[0].image is not None, steps=steps)
    return run_batch(configs, tasks, session, flow)


def run_baseline(name: str, config: RunConfig, task: Task, session: Session | None = None,
                 steps: int | None = None) -> Outcome:
    """`run_baselines` on one task."""
    return run_baselines(name, [config], [task], session, steps)[0]


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
