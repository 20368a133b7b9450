"""Run every benchmark module and write JSON (see benchmarks/__init__.py)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks
from meg_common.io import atomic_write_json, prepare_out_dir
from meg_common.provenance import versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=benchmarks.__doc__)
    parser.add_argument("--out", default="runs/bench", help="folder for the JSON results")
    parser.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    out = prepare_out_dir(args.out)
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    if args.only:
        unknown = set(args.only) - set(names) - {n.removeprefix("bench_") for n in names}
        if unknown:
            print(f"benchmarks: unknown {sorted(unknown)}; known: {names}", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.only or n.removeprefix("bench_") in args.only]
    summary = {"versions": versions(), "results": {}}
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        result = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        result["wall_s"] = round(time.perf_counter() - start, 2)
        atomic_write_json(Path(out) / f"{name}.json", {"versions": summary["versions"], **result})
        summary["results"][name] = {k: result[k] for k in ("target", "passed", "wall_s") if k in result}
        print(f"[bench] {name}: {summary['results'][name]}", flush=True)
    atomic_write_json(Path(out) / "summary.json", summary)
    return 0 if all(r.get("passed", True) for r in summary["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
