"""The `meg-phy` command line.

Subcommands are plugins registered under the entry-point group `meg_phy.commands` (see pyproject.toml):
each package adds its own, so this core never imports radio or flowgraph code. A plugin is a function
`register(subparsers)` that adds a parser and sets `func=callable(args) -> int | None` on it; it must
import nothing heavy at registration time, so `meg-phy --help` stays fast.

Every error the user can act on is one line on stderr (exit 2 for bad usage or input, 3 for a device);
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from meg_common.cli import OneLineParser
from meg_common.errors import DeviceError, InputError

PROG = "meg-phy"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Mobile Edge Generation physical-layer testbed.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_own_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for ep in sorted(metadata.entry_points(group="meg_phy.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError:
            continue  # a package of the distribution that is not built yet, or an extra that is absent
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        where = f"{PROG} {args.command}" if args.command else PROG
        print(f"{where}: error: a subcommand is required (see {where} --help)", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
    except (InputError, DeviceError) as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished results are saved, run the same command again to resume",
              file=sys.stderr)
        return 130
    return int(code or 0)


def _own_version() -> str:
    try:
        return metadata.version("meg-phy")
    except metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
