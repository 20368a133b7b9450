"""Benchmarks: `python -m benchmarks --out DIR [--only NAME]` (or `make bench`).

Each `benchmarks/bench_*.py` module has `run(quick: bool) -> dict`; the runner writes one
`DIR/<name>.json` per benchmark and `DIR/summary.json`. Targets are ratios against a reference measured in
the same run, so they hold on any machine; each result says `"target"` and `"passed"`.
"""
