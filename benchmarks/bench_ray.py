"""Ray executor scaling: link-sweep units per second with 1 and 2 Ray workers on this machine.

The units are CPU-bound sweep points (5G LDPC k=1024 n=2048, QPSK, LS estimation, a fixed number of frames
per point, 1 CPU and 1 thread per unit) run through `RayExecutor`'s actor pool, exactly as
`meg-phy link sweep --executor ray` runs them, on a private local Ray with 2 CPUs. Throughput is measured
in steady state, from the driver's arrival times of the results: after the first wave of `workers` results
(which also pays each worker's one-time setup: importing Sionna and building the link) to the last result,
(units - workers) / that time. The end-to-end campaign wall time (setup included) is reported as well.
Target: ratio = 2 workers / 1 worker >= 1.6. On a machine whose 2 cores are shared with other jobs the
ratio is bounded by what those jobs leave: the load average is recorded with the result, and so is the
executor's own share, `concurrency` (units computing at once in steady state: about 1 and 2 when the
executor keeps every worker busy; contention from other jobs shows as longer `mean_unit_s` instead).

ESs as actors (`--placement ray`, flowgraphs.placement): the wall time of one DIUG run with 4 ESs on the
embedded model, each ES on its own Ray actor (`diug_actors_s`) against every node in this process
(`diug_sequential_s`), both with one PyTorch thread per process (the actors' setting; the runs are checked
identical bit for bit), actors started and models loaded beforehand, median over repeats run alternately.
`diug_speedup` = sequential / actors. No target: only the ESs' joint denoising runs concurrently (the UE's
steps and the link simulation do not), and 4 actors share this machine's cores, so on 2 cores the ES phase
can at best halve: `diug_joint_phase_s` is that phase alone (timed around `JointDenoiser.denoise`).
`diug_joint_concurrency`: the ESs' compute seconds in that phase over its wall time, i.e. ESs computing at
once (about 1 sequential; up to 4 with actors, each step then slower when the cores are shared).
`diug_es_step_ms` is an ES's UNet step as timed on its actor and `diug_roundtrip_ms` an
empty call to an actor and back: the per-step cost of one remote call per ES per step.
"""

from __future__ import annotations

import os
import time

TARGET = 1.6


def _campaign(executor, units, setup, workers: int) -> dict:
    executor.workers = workers
    arrivals: list[tuple[float, float]] = []  # (arrival time at the driver, the unit's own compute wall_s)
    start = time.perf_counter()
    executor.run(units, setup=setup, progress=False,
                 on_result=lambda key, point: arrivals.append((time.perf_counter(), point["wall_s"])))
    wall = time.perf_counter() - start
    steady = arrivals[-1][0] - arrivals[workers - 1][0]
    busy = sum(w for _, w in arrivals[workers:])
    return {"workers": workers, "units": len(units), "campaign_wall_s": round(wall, 2),
            "steady_s": round(steady, 2), "units_per_s": round((len(units) - workers) / steady, 4),
            "campaign_units_per_s": round(len(units) / wall, 4),
            "mean_unit_s": round(sum(w for _, w in arrivals) / len(arrivals), 3),
            # units computing at once in steady state: about `workers` when the executor keeps every worker
            # busy, whatever share of the cores other jobs leave (which shows in mean_unit_s instead)
            "concurrency": round(busy / steady, 3)}


def diug(quick: bool = False) -> dict:
    """DIUG with 4 ESs: wall time with each ES on its own actor against sequential placement (module docstring)."""
    import statistics

    import torch

    from flowgraphs.config import load_config
    from flowgraphs.joint import JointDenoiser
    from flowgraphs.placement import RayPlacement
    from flowgraphs.runner import run_protocol
    from flowgraphs.session import Session

    joint: list[tuple[float, float]] = []  # per run: (wall time of joint denoising, ES compute seconds in it)
    untimed = JointDenoiser.denoise

    def timed(self, *args, **kwargs):
        def es_seconds():
            return sum(g.compute[n]["seconds"] for g in self.st.graphs for n in self.st.g.es)

        start, busy = time.perf_counter(), es_seconds()
        try:
            return untimed(self, *args, **kwargs)
        finally:
            joint.append((time.perf_counter() - start, es_seconds() - busy))

    JointDenoiser.denoise = timed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    repeats = 3 if quick else 7
    config = load_config(None, protocol="DIUG", n_es=4)
    local = Session()
    walls: dict[str, list[float]] = {"sequential": [], "actors": []}
    phases: dict[str, list[float]] = {"sequential": [], "actors": []}
    overlap: dict[str, list[float]] = {"sequential": [], "actors": []}
    load_before = os.getloadavg()[0]
    es_steps: list[float] = []
    try:
        with RayPlacement() as placement:
            remote = Session(placement=placement)
            outcomes = {"sequential": run_protocol(config, session=local),  # warm-up: models loaded, actors ready
                        "actors": run_protocol(config, session=remote)}
            identical = torch.equal(outcomes["sequential"].image, outcomes["actors"].image)
            for _ in range(repeats):
                for name, session in (("sequential", local), ("actors", remote)):
                    start = time.perf_counter()
                    out = run_protocol(config, session=session)
                    walls[name].append(time.perf_counter() - start)
                    phases[name].append(joint[-1][0])
                    overlap[name].append(joint[-1][1] / joint[-1][0])
                    identical = identical and torch.equal(out.image, outcomes["sequential"].image)
                    if name == "actors":  # an ES's step on its actor: the joint phase's ES seconds per ES step
                        es_steps.append(joint[-1][1] / sum(out.graph.compute[n]["steps"] for n in out.graph.es))
            actor = next(iter(placement._actors.values()))
            trips = []
            for _ in range(50):
                start = time.perf_counter()
                placement.fetch([actor.info.remote()])
                trips.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        JointDenoiser.denoise = untimed
    seq, act = statistics.median(walls["sequential"]), statistics.median(walls["actors"])
    return {"diug_sequential_s": round(seq, 3), "diug_actors_s": round(act, 3), "diug_speedup": round(seq / act, 3),
            "diug_identical": identical, "diug_repeats": repeats,
            "diug_load_avg_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "diug_walls_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
            "diug_joint_phase_s": {k: round(statistics.median(v), 3) for k, v in phases.items()},
            "diug_joint_phase_speedup": round(statistics.median(phases["sequential"]) /
                                              statistics.median(phases["actors"]), 3),
            "diug_joint_concurrency": {k: round(statistics.median(v), 2) for k, v in overlap.items()},
            "diug_es_step_ms": round(1e3 * statistics.median(es_steps), 2),
            "diug_roundtrip_ms": round(1e3 * statistics.median(trips), 2),
            "diug_setup": "DIUG, 4 ESs, embedded model, defaults of meg-phy run (steps, strength, split, analog links), "
                          "1 PyTorch thread per process, private local Ray, actors warm"}


def run(quick: bool = False) -> dict:
    import importlib.util

    from link_models.config import LinkConfig
    from link_models.sweep import sweep_units
    from meg_common.executors import RAY_EXTRA_HINT, RayExecutor

    if importlib.util.find_spec("ray") is None:
        return {"target": f"units/s with 2 workers / 1 worker >= {TARGET}",
                "skipped": f"ray is not installed ({RAY_EXTRA_HINT})"}

    n_units, frames = (4, 48) if quick else (12, 128)
    values = [round(0.25 * i, 2) for i in range(n_units)]
    cfg = LinkConfig(modulation="qpsk", code="ldpc", k=1024, n=2048, channel="awgn", estimator="ls",
                     ebno_db=values[0], batch=16, device="cpu")
    # target_errors out of reach: every unit runs exactly `frames` frames, so all cost the same
    units, setup = sweep_units(cfg, "digital", "ebno_db", values, target_errors=10**9, max_frames=frames, seed=0)
    os.environ["OMP_NUM_THREADS"] = "1"  # the local Ray's workers inherit it: one thread per unit
    load_before = os.getloadavg()[0]
    with RayExecutor(num_cpus=2, cpus_per_unit=1) as executor:
        one = _campaign(executor, units, setup, workers=1)
        two = _campaign(executor, units, setup, workers=2)
    ratio = two["units_per_s"] / one["units_per_s"]
    actors = diug(quick)
    return {**actors, "target": f"units/s with 2 workers / 1 worker >= {TARGET}", "passed": ratio >= TARGET,
            "ratio": round(ratio, 3), "campaign_ratio": round(two["campaign_units_per_s"] / one["campaign_units_per_s"], 3),
            "one_worker": one, "two_workers": two, "frames_per_unit": frames,
            "unit": "digital sweep point: LDPC k=1024 n=2048, QPSK, AWGN, LS, 1 CPU per unit",
            "cpu_count": os.cpu_count(), "load_avg_1min": {"before": round(load_before, 2),
                                                           "after": round(os.getloadavg()[0], 2)}}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
