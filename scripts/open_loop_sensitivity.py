"""Would a less-communication verdict on AWGN at or below 0 dB survive a cheaper rival link?

    python scripts/open_loop_sensitivity.py RUN_DIR/results.json   (or a published verdicts.json)

On AWGN at low SNR the open-loop MCS table delivers the same image with fewer symbols than OLLA with its 10 %
first-transmission target. The case study's CENTRALIZED uses OLLA. docs/link-models.md measured the open
loop's symbols against OLLA mid-session on one WebP render, n = 32 draws a point: 0.62 at -10 dB,
0.79 at -5 dB, 0.81 at 0 dB (`OPEN_LOOP`). This scales each digital rival's air symbols by that factor. It
prints, for every supported less-communication claim on AWGN at those SNRs, the rival's advantage ratio
(rival / series air symbols, lower 95 % bound) before and after scaling, and whether the bound stays above 1.
This is a sensitivity check, not a verdict: the factor comes from one image size, not from the run's own
payloads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OPEN_LOOP = {-10.0: 71088 / 115058, -5.0: 18928 / 23842, 0.0: 5426 / 6683}
"""Open-loop mean symbols / OLLA + ARQ mid-session mean symbols (docs/link-models.md, AWGN, n = 32)."""


def rows(claims: list[dict]) -> list[dict]:
    out = []
    for c in claims:
        if (c.get("claim") != "less-communication" or c.get("channel") != "awgn" or c.get("snr_db") not in OPEN_LOOP
                or c.get("verdict") != "supported" or not c.get("rival", "").startswith("centralized-digital")):
            continue
        factor = OPEN_LOOP[c["snr_db"]]
        low = c["fewer_air"]["ci_low"]
        out.append({"series": c["series"], "task_kind": c["task_kind"], "snr_db": c["snr_db"], "rival": c["rival"],
                    "ratio_low": low, "open_loop_low": low * factor, "survives": low * factor > 1})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a run's results.json or a published verdicts.json")
    args = parser.parse_args(argv)
    try:
        claims = json.loads(args.results.read_text())["claims"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.results}: no claims to read ({exc}); give a finished run's results.json", file=sys.stderr)
        return 2
    found = rows(claims)
    print("| series | task | SNR | rival | rival / series air, lower 95 % | with the open loop | survives |")
    print("| --- | --- | ---: | --- | ---: | ---: | --- |")
    for r in found:
        print(f"| {r['series']} | {r['task_kind']} | {r['snr_db']:+.0f} dB | {r['rival']} | {r['ratio_low']:.2f} "
              f"| {r['open_loop_low']:.2f} | {'yes' if r['survives'] else 'no'} |")
    print(f"\n{sum(r['survives'] for r in found)} of {len(found)} supported verdicts keep a lower bound above 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
