"""Copy a `meg-phy reproduce` run's report into the repository, so that docs can link the report as the run
wrote it instead of retyping its numbers.

    python scripts/publish_run.py RUN_DIR docs/results/full-run

Copies RUN_DIR/report.md and the PNGs it links (same names, so its links keep working) and writes
verdicts.json: results.json without its rows (claims, summary, config, units, versions, model, world,
timing), small enough to keep in git. The destination's earlier files are replaced; each write is atomic.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from meg_common.errors import InputError
from meg_common.io import atomic_write_bytes, atomic_write_json, read_json

KEPT = ("claims", "summary", "frontier", "calibration", "correction", "margins", "config", "units", "versions", "model",
        "world", "seconds", "cpu_seconds", "skipped", "not_run")


def publish(run: Path, dest: Path) -> list[Path]:
    """The files written under `dest` (report.md, its figures, verdicts.json)."""
    report, results = run / "report.md", run / "results.json"
    if not report.is_file() or not results.is_file():
        raise InputError(f"{run}: no report.md and results.json; give the --out folder of a finished "
                         "`meg-phy reproduce` (or run it with --report-only first)")
    text = report.read_text()
    figures = sorted(set(re.findall(r"\]\(([^)/]+\.png)\)", text)))
    missing = [f for f in figures if not (run / f).is_file()]
    if missing:
        raise InputError(f"{run}: report.md links {', '.join(missing)}, which is not there; rerun "
                         "`meg-phy reproduce --report-only` with the run's options to redraw the figures")
    written = [atomic_write_bytes(dest / name, (run / name).read_bytes()) for name in figures + ["report.md"]]
    data = read_json(results)
    atomic_write_json(dest / "verdicts.json", {k: data[k] for k in KEPT if k in data})
    return written + [dest / "verdicts.json"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run's --out folder")
    parser.add_argument("dest", type=Path, help="where to copy (e.g. docs/results/full-run)")
    args = parser.parse_args(argv)
    try:
        written = publish(args.run, args.dest)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
