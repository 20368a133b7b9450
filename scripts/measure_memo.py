"""CPU time of a slice of the full case-study plan with and without the denoising memo (meg_phy.memo).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_memo.py --tasks 4

The slice: img2img with the image at the UE, AWGN, every single-ES series and protocol of the full plan at
all its SNRs (radio series and the uplink-swept grid left out). Both passes run the same units in the same
order after computing the references; prints CPU seconds, the memo's hits and misses, and whether every
record is equal except the measured seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args(argv)
    from flowgraphs.experiments import case_study as cs

    plan = cs.restrict(cs.Plan.full(), kinds=["img2img-ue"], channels=["awgn"], tasks=args.tasks)
    points = [p for p in cs.points(plan)[0]
              if p.n_es <= 1 and not p.series.endswith("-sim") and p.swept == "downlink"]
    print(f"{len(points)} points x {plan.n_tasks} tasks", flush=True)
    runs = {}
    for use in (False, True):
        harness = cs.Harness(plan)
        if not use:
            harness.ldm.memo = None
        for i in range(plan.n_tasks):
            harness.reference("img2img-ue", i)
        start = time.process_time()
        runs[use] = [harness.outcome(p, i)[1] for p in points for i in range(plan.n_tasks)]
        stats = harness.ldm.memo.stats() if use else {}
        print(f"{'with' if use else 'without'} memo: {time.process_time() - start:.1f} CPU s {stats}", flush=True)
    same = all(a[k] == b[k] for a, b in zip(runs[False], runs[True], strict=True) for k in a
               if not k.endswith("seconds"))
    print("every record equal except the measured seconds:", same)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
