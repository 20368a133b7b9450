"""The case study's digital series on a fading channel against AWGN, read from a `meg-phy reproduce` folder.

    python scripts/digital_fading_units.py RUN_DIR [--fading tdl-a] > table.md

The units of a run (finished or not) hold one record per task. For every digital series and SNR, this pairs
each task's record on the fading channel with the same task's record on AWGN (same payload, same draw of
the task). It prints a Markdown table with:
- n, the paired tasks, pooled over the task kinds;
- images delivered on each channel, with a Wilson 95 % interval;
- mean downlink symbols on the fading channel, with a bootstrap 95 % interval;
- the ratio of the fading channel's mean to AWGN's, with a paired bootstrap 95 % interval.
Downlink symbols count everything sent: pilots, CP, HARQ and ARQ retransmissions, control.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

DIGITAL = ("seed-digital", "sketch-digital", "centralized-digital-q1", "centralized-digital-q10",
           "centralized-digital-q50", "centralized-digital", "centralized-digital-lossless", "noise-seed@20")
"""The series whose downlink is digital (noise-seed@K sends its control message the same way for every K)."""


def records(run: Path, channels: tuple[str, ...]) -> dict:
    """{(series, snr_db, channel): {(kind, task): record}} for the digital series on `channels`."""
    out: dict = defaultdict(dict)
    for path in sorted((run / "units").glob("*.json")):
        result = json.loads(path.read_text())["result"]
        point = result["point"]
        if point["series"] in DIGITAL and point["channel"] in channels:
            for rec in result.get("records", ()):          # a skipped point has none
                out[point["series"], point["snr_db"], point["channel"]][point["kind"], rec["task"]] = rec
    return out


def _wilson(k: int, n: int) -> str:
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    return f"{k}/{n} [{ci.low:.3f}, {ci.high:.3f}]"


def _boot(data: tuple, statistic, paired: bool = False) -> tuple[float, float]:
    if len(data[0]) < 2 or np.ptp(data[0]) == 0 and (len(data) == 1 or np.ptp(data[1]) == 0):
        value = statistic(*data)
        return value, value
    ci = stats.bootstrap(data, statistic, paired=paired, vectorized=False, n_resamples=2000,
                         random_state=np.random.default_rng(0)).confidence_interval
    return ci.low, ci.high


def table(run: Path, fading: str) -> str:
    data = records(run, ("awgn", fading))
    lines = [f"| series | SNR | n | delivered, AWGN | delivered, {fading} | mean downlink symbols, {fading} [95 %] "
             f"| {fading} / AWGN [95 %] |", "| --- | ---: | ---: | --- | --- | ---: | ---: |"]
    for series in DIGITAL:
        for snr in sorted({key[1] for key in data if key[0] == series}):
            awgn, fade = data.get((series, snr, "awgn"), {}), data.get((series, snr, fading), {})
            tasks = sorted(set(awgn) & set(fade))
            if not tasks:
                continue
            a = np.array([awgn[t]["downlink"] for t in tasks], float)
            f = np.array([fade[t]["downlink"] for t in tasks], float)
            mean_ci = _boot((f,), np.mean)
            ratio = float(f.mean() / a.mean())
            ratio_ci = _boot((f, a), lambda x, y: np.mean(x) / np.mean(y), paired=True)
            lines.append(f"| {series} | {snr:+.0f} dB | {len(tasks)} "
                         f"| {_wilson(sum(awgn[t]['delivered'] for t in tasks), len(tasks))} "
                         f"| {_wilson(sum(fade[t]['delivered'] for t in tasks), len(tasks))} "
                         f"| {f.mean():.0f} [{mean_ci[0]:.0f}, {mean_ci[1]:.0f}] "
                         f"| {ratio:.2f} [{ratio_ci[0]:.2f}, {ratio_ci[1]:.2f}] |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run's --out folder (finished or not)")
    parser.add_argument("--fading", default="tdl-a", help="the fading channel to set against AWGN")
    args = parser.parse_args(argv)
    if not (args.run / "units").is_dir():
        print(f"error: {args.run} has no units/ folder; give the --out folder of a `meg-phy reproduce` run",
              file=sys.stderr)
        return 2
    print(table(args.run, args.fading))
    return 0


if __name__ == "__main__":
    sys.exit(main())
