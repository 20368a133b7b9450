"""The options every campaign command shares (`meg-phy reproduce`, `meg-phy bandwidth`). Argparse only."""

from __future__ import annotations


def add_campaign_arguments(parser, *, quick: str, snr: str, chunk: str, series: str, kinds: str, out: str) -> None:
    """--quick, --snr-db, --tasks, --chunk, --series, --channels, --kinds, --model, --evaluator, --out and the
    executor's options, with the command's own help where it differs."""
    from meg_common.cli import number_list
    from meg_common.executors import add_executor_arguments

    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--snr-db", type=number_list("--snr-db"), help=snr)
    parser.add_argument("--tasks", type=int, help="override the number of tasks per point")
    parser.add_argument("--chunk", type=int, help=chunk)
    parser.add_argument("--series", help=series)
    parser.add_argument("--channels", help="comma-separated channels (e.g. awgn,tdl-a) instead of the plan's")
    parser.add_argument("--kinds", help=kinds)
    parser.add_argument("--model", help="Stable-Diffusion diffusers folder (default: the embedded model)")
    parser.add_argument("--evaluator", help="evaluator folder (default: the embedded one)")
    parser.add_argument("--out", required=True, help=out)
    add_executor_arguments(parser)
