"""The case study's digital series on a fading channel against AWGN, read from a `meg-phy reproduce` folder.

    python scripts/digital_fading_units.py RUN_DIR [--fading tdl-a] > table.md

The units of a run (finished or not) hold one record per task. For every digital series and SNR, this pairs
each task's record on the fading channel with the same task's record on AWGN (same payload, same draw of
the task). It prints a Markdown table with:
- n, the paired tasks, pooled over the task kinds;
- images delivered on each channel, with a Wilson 95 % interval;
- mean downlink symbols on the fading channel, with a bootstrap 95 % interval (meg_common.stats.mean);
- the ratio of the fading channel's mean to AWGN's, with a paired bootstrap 95 % interval
  (meg_common.stats.ratio_of_means, the case study's own).
Downlink symbols count everything sent: pilots, CP, HARQ and ARQ retransmissions, control.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from meg_common import stats

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


def _rate(k: int, n: int) -> str:
    r = stats.rate(k, n)
    return f"{k}/{n} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


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
            m, ratio = stats.mean(f), stats.ratio_of_means(f, a)
            lines.append(f"| {series} | {snr:+.0f} dB | {len(tasks)} "
                         f"| {_rate(sum(awgn[t]['delivered'] for t in tasks), len(tasks))} "
                         f"| {_rate(sum(fade[t]['delivered'] for t in tasks), len(tasks))} "
                         f"| {m['value']:.0f} [{m['ci_low']:.0f}, {m['ci_high']:.0f}] "
                         f"| {ratio['value']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}] |")
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
