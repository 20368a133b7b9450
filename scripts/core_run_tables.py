"""The tables of docs/reproduce.md's core-run section, read from a `meg-phy reproduce --core` results.json.

    python scripts/core_run_tables.py RUN_DIR/results.json > tables.md

Prints the verdict counts per claim and MEG series (supported / not supported / inconclusive, Holm within
each claim's family, at the run's calibrated margin), the counts at the report's three margins, and per task
kind a table of fidelity [95 %], mean UE steps and mean air symbols at five points for the MEG series, the
noise-seed sceptics and two points of CENTRALIZED's curve. Each table states its n. Nothing is typed in: the
docs copy these tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

MEG = {"seed-analog-aware": "analog seed (EIUG)", "seed-digital": "digital seed (EIUG)",
       "sketch-analog": "analog sketch (ESUC)", "sketch-digital": "digital sketch (ESUC)"}
SHOWN = {"seed-analog-aware": "EIUG analog seed", "seed-digital": "EIUG digital seed",
         "sketch-analog": "ESUC analog sketch", "sketch-digital": "ESUC digital sketch",
         "noise-seed@10": "noise-seed@10", "noise-seed@20": "noise-seed@20",
         "centralized-digital-q1": "CENTRALIZED WebP q1", "centralized-digital": "CENTRALIZED WebP q75",
         "centralized-digital-lossless": "CENTRALIZED lossless"}
POINTS = (("awgn", -10.0), ("awgn", 0.0), ("awgn", 20.0), ("tdl-a", -10.0), ("tdl-a", 0.0))
CLAIMS = ("low-snr", "less-communication", "compute-offload")
VERDICTS = ("supported", "not supported", "inconclusive")


def _value(x) -> float:
    return x["value"] if isinstance(x, dict) else x


def verdict_table(results: dict) -> str:
    counts = Counter((c["claim"], c["series"], c["verdict"]) for c in results["claims"])
    lines = ["| claim | " + " | ".join(MEG.values()) + " |", "|---|" + "---|" * len(MEG)]
    for claim in CLAIMS:
        cells = []
        for series in MEG:
            n = [counts[claim, series, v] for v in VERDICTS]
            cells.append(" / ".join(map(str, n)) if any(n) else "-")
        lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    margins = [f"margin {m['margin']:.3f}: {m['counts']}" for m in results.get("margins", [])]
    return "\n".join(lines + ["", "Counts at the report's margins (all claims): " + "; ".join(margins)])


def cell_tables(results: dict) -> str:
    rows = {(r["series"], r["task_kind"], r.get("channel"), r.get("snr_db")): r for r in results["rows"]}
    out = []
    for kind in ("img2img-ue", "text-to-image", "img2img-es"):
        ns = sorted({rows[s, kind, c, p]["n"] for s in SHOWN for c, p in POINTS if (s, kind, c, p) in rows})
        out += [f"\n**{kind}** (n = {', '.join(map(str, ns))} per cell; fidelity [95 %], UE steps, air symbols):\n",
                "| series | " + " | ".join(f"{'AWGN' if c == 'awgn' else 'TDL-A'} {p:+.0f} dB" for c, p in POINTS) + " |",
                "|---|" + "---|" * len(POINTS)]
        for series, name in SHOWN.items():
            cells = []
            for channel, snr in POINTS:
                r = rows.get((series, kind, channel, snr))
                if r is None:
                    cells.append("n/a")
                    continue
                q = r["fidelity"]
                n = "" if r["n"] == max(ns) else f" (n = {r['n']})"
                cells.append(f"{q['value']:.3f} [{q['ci_low']:.3f}, {q['ci_high']:.3f}], {_value(r['ue_steps']):.1f}, "
                             f"{r['symbols']['air']:.0f}{n}")
            if any(c != "n/a" for c in cells):
                out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a core run's results.json")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        results["claims"], results["rows"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.results}: not a finished run's results.json ({exc}); run `meg-phy reproduce "
              "--report-only` on the run folder first", file=sys.stderr)
        return 2
    print(f"units {results.get('units')}, calibrated margin {results.get('calibration', {}).get('margin')}\n")
    print(verdict_table(results))
    print(cell_tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
