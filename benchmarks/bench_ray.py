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
    return {"target": f"units/s with 2 workers / 1 worker >= {TARGET}", "passed": ratio >= TARGET,
            "ratio": round(ratio, 3), "campaign_ratio": round(two["campaign_units_per_s"] / one["campaign_units_per_s"], 3),
            "one_worker": one, "two_workers": two, "frames_per_unit": frames,
            "unit": "digital sweep point: LDPC k=1024 n=2048, QPSK, AWGN, LS, 1 CPU per unit",
            "cpu_count": os.cpu_count(), "load_avg_1min": {"before": round(load_before, 2),
                                                           "after": round(os.getloadavg()[0], 2)}}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
